//! One GPU: its context and stream, the compiled kernels, cuBLAS, and the launch and product
//! helpers the device model is written with.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::{sys::cublasOperation_t as Op, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut,
    DeviceRepr, LaunchConfig, ValidAsZeroBits,
};

use crate::{compile, open_device, CudaError, DeviceInfo, KERNELS};

/// A driver or cuBLAS error as a [`CudaError`]; out-of-memory gets its own variant.
pub(crate) fn driver(what: &str, e: impl std::fmt::Debug) -> CudaError {
    let text = format!("{e:?}");
    if text.contains("OUT_OF_MEMORY") {
        CudaError::OutOfMemory(format!("{what}: {text}"))
    } else {
        CudaError::Driver(format!("{what}: {text}"))
    }
}

/// The arithmetic of the matrix products (`train.precision`); everything else is f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE f32 (cuBLAS's default math): parity with the CPU engine.
    F32,
    /// TF32 tensor cores: inputs rounded to a 10-bit mantissa, f32 accumulation.
    Tf32,
    /// bf16 tensor cores: both operands rounded to bf16 (8-bit mantissa), f32 accumulation and
    /// output, as PyTorch's bf16 autocast does for a matmul; weights stay f32 (the master copy).
    Bf16,
}

impl Precision {
    /// The `train.precision` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// The device time of one kind of operation over a profiled stretch ([`Gpu::profile_start`]):
/// a kernel by name, or a matrix product by precision, transposes and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    pub name: String,
    pub calls: usize,
    pub ms: f64,
}

/// GPU 0, ready to launch the engine's kernels.
pub struct Gpu {
    pub info: DeviceInfo,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    precision: Cell<Precision>,
    /// The bf16 copies of a product's two operands ([`Precision::Bf16`]), grown to the largest
    /// product on first use and reused after.
    bf16: RefCell<[Option<CudaSlice<u16>>; 2]>,
    /// While profiling: each operation's name and the events recorded around it.
    profile: RefCell<Option<Vec<(String, CudaEvent, CudaEvent)>>>,
}

/// The `compute_XY` name of a compute capability.
pub fn arch_of(cc: (i32, i32)) -> &'static str {
    // Leaked once per process and capability: a handful of bytes.
    Box::leak(format!("compute_{}{}", cc.0, cc.1).into_boxed_str())
}

impl Gpu {
    /// Opens GPU 0 ([`open_device`]), compiles every kernel for its architecture with NVRTC
    /// and loads them.
    pub fn open() -> Result<Gpu, CudaError> {
        Gpu::open_cached(None)
    }

    /// [`Gpu::open`], with the compiled kernels kept in and read from `cache`
    /// ([`crate::compile_cached`]).
    pub fn open_cached(cache: Option<&std::path::Path>) -> Result<Gpu, CudaError> {
        let info = open_device()?;
        let ctx = CudaContext::new(0).map_err(|e| driver("opening GPU 0", e))?;
        let stream = ctx.default_stream();
        let arch = arch_of(info.capability);
        let mut functions = HashMap::new();
        for k in KERNELS {
            let ptx = match cache {
                Some(dir) => crate::compile_cached(k, arch, dir)?.0,
                None => compile(k, arch)?,
            };
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                .map_err(|e| driver(&format!("loading {}.cu", k.name), e))?;
            for &f in k.functions {
                let func = module
                    .load_function(f)
                    .map_err(|e| driver(&format!("{}.cu: {f}", k.name), e))?;
                functions.insert(f, func);
            }
        }
        let blas = CudaBlas::new(stream.clone()).map_err(|e| driver("cuBLAS", e))?;
        Ok(Gpu {
            info,
            ctx,
            stream,
            blas,
            functions,
            precision: Cell::new(Precision::F32),
            bf16: RefCell::new([None, None]),
            profile: RefCell::new(None),
        })
    }

    /// The arithmetic of the matrix products from now on (f32 until set).
    pub fn set_precision(&self, p: Precision) -> Result<(), CudaError> {
        use cudarc::cublas::sys::cublasMath_t as Math;
        let mode = match p {
            Precision::Tf32 => Math::CUBLAS_TF32_TENSOR_OP_MATH,
            Precision::F32 | Precision::Bf16 => Math::CUBLAS_DEFAULT_MATH,
        };
        // SAFETY: the handle is this GPU's live cuBLAS handle.
        unsafe { cudarc::cublas::sys::cublasSetMathMode(*self.blas.handle(), mode) }
            .result()
            .map_err(|e| driver("cublasSetMathMode", e))?;
        self.precision.set(p);
        Ok(())
    }

    /// The arithmetic of the matrix products.
    pub fn precision(&self) -> Precision {
        self.precision.get()
    }

    /// Starts timing every kernel launch and matrix product on the device (two events each),
    /// until [`Gpu::profile_stop`].
    pub fn profile_start(&self) {
        *self.profile.borrow_mut() = Some(Vec::new());
    }

    /// Stops profiling: the device time of each kind of operation since
    /// [`Gpu::profile_start`], the most first. Copies, memsets and the gaps between launches
    /// are not in it.
    pub fn profile_stop(&self) -> Result<Vec<OpTime>, CudaError> {
        let ops = self.profile.borrow_mut().take().unwrap_or_default();
        self.sync()?;
        let mut out: Vec<OpTime> = Vec::new();
        for (name, start, end) in ops {
            let ms = start.elapsed_ms(&end).map_err(|e| driver("timing", e))? as f64;
            match out.iter_mut().find(|o| o.name == name) {
                Some(o) => {
                    o.calls += 1;
                    o.ms += ms;
                }
                None => out.push(OpTime { name, calls: 1, ms }),
            }
        }
        out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(out)
    }

    /// Runs `f`, which queues device work, between two timing events when profiling.
    pub(crate) fn timed<R>(
        &self,
        name: impl FnOnce() -> String,
        f: impl FnOnce() -> Result<R, CudaError>,
    ) -> Result<R, CudaError> {
        if self.profile.borrow().is_none() {
            return f();
        }
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let event = || {
            self.stream
                .record_event(timing)
                .map_err(|e| driver("recording an event", e))
        };
        let start = event()?;
        let r = f()?;
        let end = event()?;
        if let Some(ops) = self.profile.borrow_mut().as_mut() {
            ops.push((name(), start, end));
        }
        Ok(r)
    }

    /// The kernel `name` (one of [`KERNELS`]' functions).
    pub fn function(&self, name: &str) -> &CudaFunction {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("no kernel named {name}"))
    }

    /// A device copy of `v`.
    pub fn upload<T: DeviceRepr>(&self, v: &[T]) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .clone_htod(v)
            .map_err(|e| driver("copying to the GPU", e))
    }

    /// `n` zeros on the device.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .alloc_zeros(n.max(1))
            .map_err(|e| driver(&format!("allocating {n} elements"), e))
    }

    /// A host copy of `src`.
    pub fn download<T: DeviceRepr + Default + Clone, S: DevicePtr<T>>(
        &self,
        src: &S,
    ) -> Result<Vec<T>, CudaError> {
        self.stream
            .clone_dtoh(src)
            .map_err(|e| driver("copying from the GPU", e))
    }

    /// The device's free memory now, in bytes (`cuMemGetInfo`), after everything queued.
    pub fn free_memory(&self) -> Result<usize, CudaError> {
        self.sync()?;
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver("binding the context", e))?;
        let (free, _) =
            cudarc::driver::result::mem_get_info().map_err(|e| driver("cuMemGetInfo", e))?;
        Ok(free)
    }

    /// Waits for everything queued.
    pub fn sync(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(|e| driver("synchronizing", e))
    }

    /// Row-major `y[rows, dout] (+)= x[rows, din] · w[dout, din]ᵀ`, as the CPU engine's
    /// `linear_fwd`: in cuBLAS's column-major terms, yᵀ = op(w)ᵀ xᵀ.
    #[allow(clippy::too_many_arguments)]
    pub fn linear<Y: DevicePtrMut<f32>, X: DevicePtr<f32>, W: DevicePtr<f32>>(
        &self,
        y: &mut Y,
        x: &X,
        w: &W,
        rows: usize,
        din: usize,
        dout: usize,
        accumulate: bool,
    ) -> Result<(), CudaError> {
        self.gemm(
            (Op::CUBLAS_OP_T, Op::CUBLAS_OP_N),
            (dout, rows, din),
            (w, din, dout * din),
            (x, din, rows * din),
            (y, dout),
            accumulate,
        )
    }

    /// `dx[rows, din] (+)= dy[rows, dout] · w[dout, din]`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd_input<Y: DevicePtrMut<f32>, X: DevicePtr<f32>, W: DevicePtr<f32>>(
        &self,
        dx: &mut Y,
        dy: &X,
        w: &W,
        rows: usize,
        din: usize,
        dout: usize,
        accumulate: bool,
    ) -> Result<(), CudaError> {
        self.gemm(
            (Op::CUBLAS_OP_N, Op::CUBLAS_OP_N),
            (din, rows, dout),
            (w, din, dout * din),
            (dy, dout, rows * dout),
            (dx, din),
            accumulate,
        )
    }

    /// `dw[dout, din] (+)= dy[rows, dout]ᵀ · x[rows, din]`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd_weight<Y: DevicePtrMut<f32>, X: DevicePtr<f32>, D: DevicePtr<f32>>(
        &self,
        dw: &mut Y,
        dy: &D,
        x: &X,
        rows: usize,
        din: usize,
        dout: usize,
        accumulate: bool,
    ) -> Result<(), CudaError> {
        self.gemm(
            (Op::CUBLAS_OP_N, Op::CUBLAS_OP_T),
            (din, dout, rows),
            (x, din, rows * din),
            (dy, dout, rows * dout),
            (dw, din),
            accumulate,
        )
    }

    /// Both gradients of `y = x · wᵀ`, overwriting them: `dw[dout, din] = dyᵀ · x` and
    /// `dx[rows, din] = dy · w` (the CPU engine's `linear_bwd`).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd<
        DX: DevicePtrMut<f32>,
        DW: DevicePtrMut<f32>,
        D: DevicePtr<f32>,
        X: DevicePtr<f32>,
        W: DevicePtr<f32>,
    >(
        &self,
        (dx, dw): (&mut DX, &mut DW),
        dy: &D,
        (x, w): (&X, &W),
        rows: usize,
        din: usize,
        dout: usize,
    ) -> Result<(), CudaError> {
        self.linear_bwd_weight(dw, dy, x, rows, din, dout, false)?;
        self.linear_bwd_input(dx, dy, w, rows, din, dout, false)
    }

    /// Column-major `c = op_a(a) · op_b(b) (+ c)`, f32 in and out; `a` and `b` hold
    /// `a_len` and `b_len` elements. Under [`Precision::Bf16`] both are rounded to bf16 first.
    fn gemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        (transa, transb): (Op, Op),
        (m, n, k): (usize, usize, usize),
        (a, lda, a_len): (&A, usize, usize),
        (b, ldb, b_len): (&B, usize, usize),
        (c, ldc): (&mut C, usize),
        accumulate: bool,
    ) -> Result<(), CudaError> {
        let int = |v: usize| v as std::ffi::c_int;
        let op = |o: Op| if o == Op::CUBLAS_OP_N { 'N' } else { 'T' };
        let label = || {
            let p = self.precision.get().as_str();
            format!("{p} gemm {}{} {m}x{n}x{k}", op(transa), op(transb))
        };
        if self.precision.get() == Precision::Bf16 {
            let mut scratch = self.bf16.borrow_mut();
            let [sa, sb] = &mut *scratch;
            let a16 = self.to_bf16(sa, a, a_len)?;
            let b16 = self.to_bf16(sb, b, b_len)?;
            use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cudaDataType_t};
            let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
            let (pa, _ra) = a16.device_ptr(&self.stream);
            let (pb, _rb) = b16.device_ptr(&self.stream);
            let (pc, _rc) = c.device_ptr_mut(&self.stream);
            // SAFETY: the shapes and leading dimensions describe the buffers, which the device
            // model sizes for them; the bf16 copies hold at least a_len and b_len elements;
            // alpha and beta are f32 as CUBLAS_COMPUTE_32F requires.
            return self.timed(label, || unsafe {
                cudarc::cublas::result::gemm_ex(
                    *self.blas.handle(),
                    transa,
                    transb,
                    int(m),
                    int(n),
                    int(k),
                    (&alpha) as *const f32 as *const _,
                    pa as *const _,
                    cudaDataType_t::CUDA_R_16BF,
                    int(lda),
                    pb as *const _,
                    cudaDataType_t::CUDA_R_16BF,
                    int(ldb),
                    (&beta) as *const f32 as *const _,
                    pc as *mut _,
                    cudaDataType_t::CUDA_R_32F,
                    int(ldc),
                    cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
                .map_err(|e| driver("cuBLAS bf16 gemm", e))
            });
        }
        let cfg = GemmConfig {
            transa,
            transb,
            m: int(m),
            n: int(n),
            k: int(k),
            alpha: 1.0f32,
            lda: int(lda),
            ldb: int(ldb),
            beta: if accumulate { 1.0 } else { 0.0 },
            ldc: int(ldc),
        };
        // SAFETY: the shapes and leading dimensions describe the buffers, which the device
        // model sizes for them.
        self.timed(label, || {
            unsafe { self.blas.gemm(cfg, a, b, c) }.map_err(|e| driver("cuBLAS sgemm", e))
        })
    }
}

impl Gpu {
    /// `batch` column-major products `c_i = alpha · op_a(a_i) · op_b(b_i)` (overwriting),
    /// operand i of each `stride` elements after operand i − 1, `true` meaning transposed: the
    /// batched-GEMM attention's per-head products over the sequences. cuBLAS sgemm, so TF32 under
    /// [`Precision::Tf32`] and f32 otherwise (bf16 included: attention stays f32 there).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_batched<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        (ta, tb): (bool, bool),
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (a, lda, sa): (&A, usize, usize),
        (b, ldb, sb): (&B, usize, usize),
        (c, ldc, sc): (&mut C, usize, usize),
        batch: usize,
    ) -> Result<(), CudaError> {
        use cudarc::cublas::StridedBatchedConfig;
        let int = |v: usize| v as std::ffi::c_int;
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        let cfg = StridedBatchedConfig {
            gemm: GemmConfig {
                transa: op(ta),
                transb: op(tb),
                m: int(m),
                n: int(n),
                k: int(k),
                alpha,
                lda: int(lda),
                ldb: int(ldb),
                beta: 0.0f32,
                ldc: int(ldc),
            },
            batch_size: int(batch),
            stride_a: sa as std::ffi::c_longlong,
            stride_b: sb as std::ffi::c_longlong,
            stride_c: sc as std::ffi::c_longlong,
        };
        let label = || {
            let p = match self.precision.get() {
                Precision::Tf32 => "tf32",
                Precision::F32 | Precision::Bf16 => "f32",
            };
            let l = |t: bool| if t { 'T' } else { 'N' };
            format!("{p} batched gemm {}{} {m}x{n}x{k} x{batch}", l(ta), l(tb))
        };
        // SAFETY: the shapes, leading dimensions and strides describe the buffers, which the
        // device model sizes for them (the emulator checks every product's extent).
        self.timed(label, || {
            unsafe { self.blas.gemm_strided_batched(cfg, a, b, c) }
                .map_err(|e| driver("cuBLAS batched sgemm", e))
        })
    }

    /// `x`'s first `len` elements rounded to bf16 into `slot` (allocated, or grown, when too
    /// small: the first steps only, as a run's products keep their sizes).
    fn to_bf16<'s, X: DevicePtr<f32>>(
        &self,
        slot: &'s mut Option<CudaSlice<u16>>,
        x: &X,
        len: usize,
    ) -> Result<&'s CudaSlice<u16>, CudaError> {
        if slot.as_ref().is_none_or(|s| s.len() < len) {
            *slot = Some(self.zeros::<u16>(len)?);
        }
        let out = slot.as_mut().expect("just allocated");
        let n = len as i64;
        // The operand is any device buffer (a view of the parameters, an activation): its
        // address is pushed as the kernel's `const float*`, its guard held over the launch.
        let (px, _guard) = x.device_ptr(&self.stream);
        launch!(self, "to_bf16", per_element(len), &mut *out, &px, &n)?;
        Ok(out)
    }
}

/// One thread per element, 256 to a block.
pub fn per_element(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row, 4 warps to a block.
pub fn per_warp(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(4).max(1) as u32, 1, 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block of 256 threads.
pub fn one_block() -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Submits a launch whose arguments are pushed: for [`launch!`] only, which pushes exactly the
/// arguments each kernel's source declares, for buffers the device model sized for it.
pub(crate) fn submit(
    b: &mut cudarc::driver::LaunchArgs<'_>,
    cfg: LaunchConfig,
    name: &str,
) -> Result<(), CudaError> {
    // SAFETY: see above; every call comes from `launch!` in this crate.
    unsafe { b.launch(cfg) }
        .map(|_| ())
        .map_err(|e| driver(name, e))
}

/// Launches kernel `$name` on `$gpu` with launch config `$cfg` and the arguments, each pushed
/// by reference (device buffers, views, or local scalars). The launch is one statement, so
/// temporary views among the arguments live until it is submitted.
macro_rules! launch {
    ($gpu:expr, $name:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        use cudarc::driver::PushKernelArg;
        let gpu: &$crate::gpu::Gpu = $gpu;
        gpu.timed(
            || $name.to_string(),
            || $crate::gpu::submit(
                gpu.stream.launch_builder(gpu.function($name))$(.arg($arg))+,
                $cfg,
                $name,
            ),
        )
    }};
}
pub(crate) use launch;
