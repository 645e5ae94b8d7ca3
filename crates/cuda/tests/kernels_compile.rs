//! Every kernel source compiles with NVRTC and defines the functions the engine launches.
//! Needs libnvrtc, not a GPU: `.ci/run` installs NVIDIA's NVRTC wheel from PyPI and puts its
//! lib folder on LD_LIBRARY_PATH. Without libnvrtc the test prints SKIPPED and why; with
//! `MODICL_REQUIRE_NVRTC=1` (set by `.ci/run`) a missing libnvrtc fails it instead.

use modicl_cuda::{compile, find_library, nvrtc_version, Library, DEFAULT_ARCH, KERNELS};

fn nvrtc_or_skip() -> bool {
    match find_library(Library::Nvrtc) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var("MODICL_REQUIRE_NVRTC").is_err(),
                "MODICL_REQUIRE_NVRTC is set but {e}"
            );
            eprintln!("SKIPPED: {e}");
            false
        }
    }
}

#[test]
fn every_kernel_compiles_for_the_h200_and_older_gpus() {
    if !nvrtc_or_skip() {
        return;
    }
    let (major, minor) = nvrtc_version().unwrap();
    eprintln!("NVRTC {major}.{minor}");
    // compute_90: H100/H200; compute_80: A100 (the official setup's GPU).
    for arch in [DEFAULT_ARCH, "compute_80"] {
        for k in KERNELS {
            let ptx = compile(k, arch).unwrap_or_else(|e| panic!("{e}"));
            assert!(ptx.contains(".target sm_"), "{}: not PTX", k.name);
            eprintln!("{}.cu -> {} bytes of PTX for {arch}", k.name, ptx.len());
        }
    }
}

#[test]
fn compiled_kernels_are_cached_and_read_back() {
    if !nvrtc_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = &KERNELS[0];
    let (first, hit) = modicl_cuda::compile_cached(k, DEFAULT_ARCH, tmp.path()).unwrap();
    assert!(!hit, "an empty cache hit");
    let files: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    let (again, hit) = modicl_cuda::compile_cached(k, DEFAULT_ARCH, tmp.path()).unwrap();
    assert!(hit && again == first, "not read back");
    // Another architecture is another entry; a damaged entry is compiled again.
    let (_, hit) = modicl_cuda::compile_cached(k, "compute_80", tmp.path()).unwrap();
    assert!(!hit);
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        std::fs::write(e.unwrap().path(), "garbage").unwrap();
    }
    let (fresh, hit) = modicl_cuda::compile_cached(k, DEFAULT_ARCH, tmp.path()).unwrap();
    assert!(!hit && fresh == first);
}

#[test]
fn a_kernel_with_an_error_gives_the_compiler_log_on_one_line() {
    if !nvrtc_or_skip() {
        return;
    }
    let bad = modicl_cuda::KernelSource {
        name: "broken",
        source: "extern \"C\" __global__ void f(float* x) { x[0] = undefined_name; }\n",
        functions: &["f"],
    };
    let e = compile(&bad, DEFAULT_ARCH).unwrap_err().to_string();
    assert!(
        e.contains("broken.cu") && e.contains("undefined_name"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    // A source that compiles but lacks a listed function is caught too.
    let short = modicl_cuda::KernelSource {
        name: "short",
        source: "extern \"C\" __global__ void f(float* x) { x[0] = 1.0f; }\n",
        functions: &["f", "g"],
    };
    let e = compile(&short, DEFAULT_ARCH).unwrap_err().to_string();
    assert!(e.contains("lacks the function g"), "{e}");
}
