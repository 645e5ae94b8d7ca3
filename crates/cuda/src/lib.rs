//! modicl's CUDA backend: the kernel sources, their run-time compilation with NVRTC, and the
//! probing that turns a missing driver, GPU or library into an error instead of a panic.
//!
//! Every CUDA library is loaded at run time (`cudarc` with dynamic loading), so the workspace
//! builds and runs on a machine with no CUDA toolkit and no GPU. `cudarc` panics when a library
//! it needs cannot be loaded; [`find_library`] looks for each one first, with the same names,
//! and every entry point here calls it before touching `cudarc`.
//!
//! The kernels are CUDA C in `crates/cuda/kernels/*.cu`, over the CPU engine's flat layouts
//! (token-major activations, one flat parameter buffer). None uses atomics on floats: every
//! sum runs in a fixed order, so the same configuration gives the same bytes on the same GPU.
//!
//! [`GpuModel`] is the device model (forward, loss, backward and AdamW in f32 through these
//! kernels and cuBLAS), which `modicl train --device cuda` uses. Status: built, every kernel
//! compile-checked in CI with NVRTC, and every GPU test passing in CI on the CPU emulator of
//! `tools/gpu/emulator`; no real GPU has run any of it yet (`tools/gpu/check.sh` will).

use std::ffi::OsStr;

pub mod gpu;
pub mod model;
pub use gpu::{Gpu, OpTime, Precision};
pub use model::{Attention, GpuModel};

/// A kernel source file and the functions it defines.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// The file's stem under `crates/cuda/kernels/`.
    pub name: &'static str,
    pub source: &'static str,
    /// The `extern "C" __global__` functions it must define.
    pub functions: &'static [&'static str],
}

/// Every kernel source of the backend.
pub const KERNELS: &[KernelSource] = &[
    KernelSource {
        name: "elementwise",
        source: include_str!("../kernels/elementwise.cu"),
        functions: &[
            "embed_fwd",
            "embed_bwd",
            "act_fwd",
            "act_bwd",
            "add",
            "gather_rows",
            "scatter_add_rows",
            "add_gathered",
            "adamw",
            "to_bf16",
        ],
    },
    KernelSource {
        name: "layernorm",
        source: include_str!("../kernels/layernorm.cu"),
        functions: &["ln_fwd", "ln_bwd_dx", "ln_bwd_wb_partial", "sum_chunks"],
    },
    KernelSource {
        name: "attention",
        source: include_str!("../kernels/attention.cu"),
        functions: &[
            "rope",
            "attn_fwd",
            "attn_bwd_q",
            "attn_bwd_kv",
            "softmax_causal",
            "softmax_causal_bwd",
        ],
    },
    KernelSource {
        name: "loss",
        source: include_str!("../kernels/loss.cu"),
        functions: &["cross_entropy", "sum_f64", "shot_counts"],
    },
];

/// What can go wrong before or while using the GPU. Each is one line.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("--device cuda: {what} is not installed or not on the library path (looked for {names}); {hint}")]
    MissingLibrary {
        what: &'static str,
        names: String,
        hint: &'static str,
    },
    #[error("--device cuda: no usable CUDA GPU: {0}")]
    NoDevice(String),
    #[error("compiling kernels/{kernel}.cu with NVRTC for {arch} failed: {log}")]
    Compile {
        kernel: String,
        arch: String,
        log: String,
    },
    #[error("kernels/{kernel}.cu compiled, but its PTX lacks the function {function}")]
    MissingFunction { kernel: String, function: String },
    #[error("CUDA: {0}")]
    Driver(String),
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
    #[error("--device cuda: this model and batch need about {} of GPU memory, and {device} has {} free; lower task.batch", size(*needed), size(*free))]
    TooSmall {
        needed: usize,
        free: usize,
        device: String,
    },
}

/// A byte count for people: GiB with one decimal from 1 GiB up, MiB below.
fn size(bytes: usize) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A CUDA library the backend loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    /// The driver (`libcuda`), installed with the NVIDIA driver.
    Driver,
    /// The run-time compiler (`libnvrtc`), from a CUDA toolkit or the `nvidia-cuda-nvrtc` wheel.
    Nvrtc,
    /// cuBLAS (`libcublas`), from a CUDA toolkit or the `nvidia-cublas` wheel.
    Cublas,
}

impl Library {
    fn stem(self) -> &'static str {
        match self {
            Library::Driver => "cuda",
            Library::Nvrtc => "nvrtc",
            Library::Cublas => "cublas",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Library::Driver => "the NVIDIA driver (libcuda)",
            Library::Nvrtc => "NVRTC, the CUDA run-time compiler (libnvrtc)",
            Library::Cublas => "cuBLAS (libcublas)",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Library::Driver => "this machine has no NVIDIA driver; use --device cpu",
            Library::Nvrtc => {
                "install a CUDA toolkit, or `pip install nvidia-cuda-nvrtc` and add its lib folder to LD_LIBRARY_PATH"
            }
            Library::Cublas => {
                "install a CUDA toolkit, or `pip install nvidia-cublas` and add its lib folder to LD_LIBRARY_PATH"
            }
        }
    }
}

/// The file names `cudarc` tries for `lib`, in its order.
pub fn library_names(lib: Library) -> Vec<String> {
    cudarc::get_lib_name_candidates(lib.stem())
}

/// The first of [`library_names`] that the dynamic loader opens, as `cudarc` will.
pub fn find_library(lib: Library) -> Result<String, CudaError> {
    let names = library_names(lib);
    for n in &names {
        // SAFETY: loading a CUDA library runs its initialisers, as cudarc's own loading
        // does; the handle is dropped at once.
        if unsafe { libloading::Library::new(OsStr::new(n)) }.is_ok() {
            return Ok(n.clone());
        }
    }
    // The message lists the names the loader tried in their usual Unix form, once each.
    let unix = format!("lib{}.so", lib.stem());
    let mut shown: Vec<&str> = Vec::new();
    for n in names.iter().filter(|n| n.starts_with(&unix)) {
        if !shown.contains(&n.as_str()) {
            shown.push(n);
        }
    }
    if shown.is_empty() {
        shown = names.iter().map(String::as_str).collect();
    }
    Err(CudaError::MissingLibrary {
        what: lib.what(),
        names: shown.join(", "),
        hint: lib.hint(),
    })
}

/// The NVRTC version (major, minor), once the library is found.
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    find_library(Library::Nvrtc)?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: nvrtcVersion writes two ints; the library was found above.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| CudaError::Compile {
        kernel: "-".into(),
        arch: "-".into(),
        log: format!("nvrtcVersion: {e:?}"),
    })?;
    Ok((major, minor))
}

/// The virtual architecture kernels are compiled for when no GPU says otherwise: compute
/// capability 9.0 (H100, H200).
pub const DEFAULT_ARCH: &str = "compute_90";

/// Compiles `k` to PTX for `arch` (a `compute_XY` name), with the options the engine uses.
/// An NVRTC error carries its log, on one line.
pub fn compile(k: &KernelSource, arch: &'static str) -> Result<String, CudaError> {
    find_library(Library::Nvrtc)?;
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        name: Some(format!("{}.cu", k.name)),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(k.source, opts).map_err(|e| {
        let log = match &e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        };
        CudaError::Compile {
            kernel: k.name.into(),
            arch: arch.into(),
            log: one_line(&log),
        }
    })?;
    let text = ptx.to_src();
    for f in k.functions {
        if !text.contains(&format!(".entry {f}(")) {
            return Err(CudaError::MissingFunction {
                kernel: k.name.into(),
                function: (*f).into(),
            });
        }
    }
    Ok(text)
}

/// [`compile`], through a cache folder: the PTX of `k` for `arch` is kept in
/// `cache/<name>-<arch>-<hash>.ptx`, the hash taken over the source, the architecture and the
/// NVRTC version, and read back instead of compiling again. A run keeps its cache in its run
/// directory, so a resumed run (or each restart of a killed one) skips NVRTC. Returns the PTX
/// and whether it came from the cache. A cache file that cannot be written is not an error:
/// the next start compiles again.
pub fn compile_cached(
    k: &KernelSource,
    arch: &'static str,
    cache: &std::path::Path,
) -> Result<(String, bool), CudaError> {
    let (major, minor) = nvrtc_version()?;
    let mut h = blake3::Hasher::new();
    h.update(k.source.as_bytes());
    h.update(format!("\0{arch}\0{major}.{minor}").as_bytes());
    let hex = h.finalize().to_hex();
    let path = cache.join(format!("{}-{arch}-{}.ptx", k.name, &hex[..16]));
    if let Ok(ptx) = std::fs::read_to_string(&path) {
        let complete = k
            .functions
            .iter()
            .all(|f| ptx.contains(&format!(".entry {f}(")));
        if complete {
            return Ok((ptx, true));
        }
    }
    let ptx = compile(k, arch)?;
    let _ = modicl_core::fs::write_atomic(&path, ptx.as_bytes());
    Ok((ptx, false))
}

/// A compiler log on one line: its lines joined with " | ", blank ones dropped.
fn one_line(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Whether `needed` bytes fit in `free` on `device`: [`CudaError::TooSmall`] if not.
pub fn check_fits(needed: usize, free: usize, device: &str) -> Result<(), CudaError> {
    if needed > free {
        return Err(CudaError::TooSmall {
            needed,
            free,
            device: device.into(),
        });
    }
    Ok(())
}

/// The GPU a `--device cuda` run would use: its name, compute capability and memory.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub name: String,
    pub capability: (i32, i32),
    pub memory_bytes: usize,
    /// Free device memory when it was opened.
    pub free_bytes: usize,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (compute capability {}.{}, {:.0} GiB)",
            self.name,
            self.capability.0,
            self.capability.1,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        )
    }
}

/// For GPU tests: the GPU, or `None` with `SKIPPED: <why>` printed when there is none. With
/// `MODICL_REQUIRE_GPU` set (tools/gpu/check.sh on a GPU, tools/gpu/emulate.sh on the
/// emulator) no GPU is a panic instead, so that those runs cannot pass by skipping.
pub fn device_or_skip() -> Option<DeviceInfo> {
    match open_device() {
        Ok(d) => {
            eprintln!("GPU: {d}");
            Some(d)
        }
        Err(e) => {
            assert!(
                std::env::var("MODICL_REQUIRE_GPU").is_err(),
                "MODICL_REQUIRE_GPU is set but {e}"
            );
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// Opens GPU 0 after checking for the driver, NVRTC and cuBLAS, so that a machine without any
/// of them gets an error naming what is missing rather than a panic inside `cudarc`.
pub fn open_device() -> Result<DeviceInfo, CudaError> {
    find_library(Library::Driver)?;
    find_library(Library::Nvrtc)?;
    find_library(Library::Cublas)?;
    let ctx =
        cudarc::driver::CudaContext::new(0).map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
    let name = ctx
        .name()
        .map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
    let cc = ctx
        .compute_capability()
        .map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
    let (free, total) = cudarc::driver::result::mem_get_info()
        .map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
    Ok(DeviceInfo {
        name,
        capability: cc,
        memory_bytes: total,
        free_bytes: free,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_function_is_defined_in_its_source() {
        for k in KERNELS {
            for f in k.functions {
                let decl = format!("__global__ void {f}(");
                assert!(k.source.contains(&decl), "{}.cu lacks {decl}", k.name);
            }
            // And nothing defined is left unlisted (a kernel nobody checks).
            let defined = k.source.matches("__global__ void ").count();
            assert_eq!(defined, k.functions.len(), "{}.cu", k.name);
        }
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        // No driver on a machine without a GPU; with one, this only checks the happy path.
        match find_library(Library::Driver) {
            Ok(name) => assert!(name.contains("cuda")),
            Err(e) => {
                let s = e.to_string();
                assert!(s.contains("libcuda") && s.contains("--device cpu"), "{s}");
                assert_eq!(s.lines().count(), 1);
            }
        }
    }

    #[test]
    fn sizes_read_in_mib_below_a_gib() {
        assert_eq!(size(3 << 19), "1.5 MiB");
        assert_eq!(size(1023 << 20), "1023.0 MiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
    }

    #[test]
    fn compiler_logs_become_one_line() {
        assert_eq!(
            one_line("a.cu(3): error: x\n\n  b\n1 error detected\n"),
            "a.cu(3): error: x | b | 1 error detected"
        );
    }
}
