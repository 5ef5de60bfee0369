//! One GPU: its context, stream, cuBLAS handle and compiled kernels.
//!
//! A [`CudaDevice`] is made once per ordinal and shared (`Arc`) by every
//! buffer and op on that GPU. Making one checks that the libraries load,
//! creates (retains) the driver context, and sets up:
//!
//! - **one stream**. Every copy and kernel is queued on it in program
//!   order, so one op always sees the results of the ops before it without
//!   any events; the host waits only when it reads a result back.
//! - **a memory pool that keeps freed memory**. Buffers are allocated and
//!   freed in stream order (`cuMemAllocAsync`); raising the pool's release
//!   threshold keeps freed blocks for reuse instead of returning them to
//!   the driver at every synchronisation, which makes a training step's
//!   thousands of allocations nearly free after the first step.
//! - **kernels on demand**. The first launch of a kernel from a `.cu` source
//!   compiles that source with NVRTC for this GPU's compute capability
//!   (see `compile.rs`; `cache.rs` keeps the result on disk for the next
//!   process) and loads it; later launches reuse the function.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr};

use super::cache::compile_cached;
use super::compile::{capability_number, Target};
use super::error::{CudaError, Result};
use super::libraries::{require_all, require_driver};
use super::sources::KernelSource;

pub struct CudaDevice {
    ordinal: usize,
    name: String,
    capability: (i32, i32),
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: Mutex<CudaBlas>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaDevice({}: {}, sm_{}{})", self.ordinal, self.name, self.capability.0, self.capability.1)
    }
}

/// Number of GPUs the driver sees; an error when there is no driver.
pub fn device_count() -> Result<usize> {
    require_driver()?;
    catch_panic(|| {
        let n = CudaContext::device_count().map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
        Ok(n.max(0) as usize)
    })
}

impl CudaDevice {
    /// The device for `ordinal`, created on first use and cached for the
    /// process. Errors (never panics) when a library or the GPU is missing.
    pub fn get(ordinal: usize) -> Result<Arc<CudaDevice>> {
        static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();
        let devices = DEVICES.get_or_init(Default::default);
        let mut devices = devices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = devices.get(&ordinal) {
            return Ok(d.clone());
        }
        let device = Arc::new(CudaDevice::create(ordinal)?);
        devices.insert(ordinal, device.clone());
        Ok(device)
    }

    fn create(ordinal: usize) -> Result<CudaDevice> {
        // No GPU is the common case and says so first; then the compiler
        // and cuBLAS.
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice(if count == 0 {
                "the driver found no GPU".into()
            } else {
                format!("cuda:{ordinal} does not exist ({count} GPU(s): cuda:0..cuda:{})", count - 1)
            }));
        }
        require_all()?;
        catch_panic(|| {
            let context = CudaContext::new(ordinal).map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
            // SAFETY: this backend queues all work of a device on one stream,
            // so cudarc's per-buffer events (which order work across streams)
            // are not needed; turning them off saves two events per buffer.
            unsafe { context.disable_event_tracking() };
            let stream = context.default_stream();
            keep_freed_memory(&context)?;
            let blas = CudaBlas::new(stream.clone())?;
            let name = context.name()?;
            let capability = context.compute_capability()?;
            Ok(CudaDevice {
                ordinal,
                name,
                capability,
                context,
                stream,
                blas: Mutex::new(blas),
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
            })
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// The GPU's marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Compute capability (major, minor): (9, 0) for an H100.
    pub fn capability(&self) -> (i32, i32) {
        self.capability
    }
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cuBLAS handle, locked for one call (a handle must not be used
    /// by two threads at once).
    pub fn blas(&self) -> std::sync::MutexGuard<'_, CudaBlas> {
        self.blas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new buffer of `n` elements whose contents the caller overwrites
    /// completely before reading. With [`set_poison_outputs`] on, it is
    /// filled with 0xFF bytes first (NaN in every float type, -1 in the
    /// integers), so a kernel that misses an element shows up in tests.
    pub fn alloc<T: DeviceRepr>(&self, n: usize) -> Result<CudaSlice<T>> {
        // A zero-byte allocation is an error in the driver; keep one
        // element so every buffer has an address (callers track lengths).
        // SAFETY: the memory is uninitialised, which is sound for the plain
        // numeric types stored here; see the contract above.
        let buffer = unsafe { self.stream.alloc::<T>(n.max(1)) }?;
        if POISON.load(Ordering::Relaxed) {
            self.fill_bytes(&buffer, 0xFF)?;
        }
        Ok(buffer)
    }

    /// A new buffer of `n` zeros.
    pub fn alloc_zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        Ok(self.stream.alloc_zeros::<T>(n.max(1))?)
    }

    /// Sets every byte of `buffer` to `value`.
    pub fn fill_bytes<T>(&self, buffer: &CudaSlice<T>, value: u8) -> Result<()> {
        let bytes = buffer.num_bytes();
        let (ptr, _guard) = buffer.device_ptr(&self.stream);
        // SAFETY: `ptr` addresses `bytes` bytes of a live allocation; the
        // memset is queued on the stream every later use is queued on.
        let status = unsafe { cudarc::driver::sys::cuMemsetD8Async(ptr, value, bytes, self.stream.cu_stream()) };
        if status != cudarc::driver::sys::CUresult::CUDA_SUCCESS {
            return Err(CudaError::Driver(format!("cuMemsetD8Async: {status:?}")));
        }
        Ok(())
    }

    /// Host values to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        if host.is_empty() {
            return self.alloc::<T>(0);
        }
        Ok(self.stream.clone_htod(host)?)
    }

    /// The first `n` elements of a device buffer, copied to the host
    /// (waits for the work queued before).
    pub fn download<T: DeviceRepr + Default + Clone>(&self, buffer: &CudaSlice<T>, n: usize) -> Result<Vec<T>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut host = vec![T::default(); n];
        self.stream.memcpy_dtoh(&buffer.slice(..n), &mut host)?;
        self.synchronize()?;
        Ok(host)
    }

    /// Waits until everything queued so far has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(CudaError::from)
    }

    /// The kernel `name` from `source`, compiling and loading the source on
    /// first use.
    pub fn function(&self, source: &'static KernelSource, name: &str) -> Result<CudaFunction> {
        if let Some(f) = self.functions.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(f.clone());
        }
        let module = self.module(source)?;
        let f = module
            .load_function(name)
            .map_err(|e| CudaError::Driver(format!("kernel {name} in {}: {e:?}", source.file)))?;
        self.functions.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn module(&self, source: &'static KernelSource) -> Result<Arc<CudaModule>> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(source.file) {
            return Ok(m.clone());
        }
        let cc = capability_number(self.capability.0, self.capability.1);
        let cubin = compile_cached(source, Target::Cubin(cc))?;
        let module = self
            .context
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .map_err(|e| CudaError::Driver(format!("loading {} for sm_{cc}: {e:?}", source.file)))?;
        modules.insert(source.file, module.clone());
        Ok(module)
    }

    /// Compiles and loads every kernel source now, so that a missing or
    /// broken compiler shows up as one error before any work starts.
    pub fn load_all_kernels(&self) -> Result<()> {
        for source in super::sources::ALL {
            self.module(source)?;
        }
        Ok(())
    }
}

static POISON: AtomicBool = AtomicBool::new(false);

/// Tests turn this on so every output buffer starts as garbage (0xFF
/// bytes) instead of whatever memory the pool hands back.
pub fn set_poison_outputs(on: bool) {
    POISON.store(on, Ordering::Relaxed);
}

/// Raises the default memory pool's release threshold to "never", so
/// freed device memory stays cached for the next allocation.
fn keep_freed_memory(context: &CudaContext) -> Result<()> {
    use cudarc::driver::sys;
    if !context.has_async_alloc() {
        return Ok(());
    }
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: the context is current on this thread (CudaContext::new binds
    // it); both out-pointers are valid for the duration of the calls.
    unsafe {
        let status = sys::cuDeviceGetDefaultMemPool(&mut pool, context.cu_device());
        if status != sys::CUresult::CUDA_SUCCESS {
            return Err(CudaError::Driver(format!("cuDeviceGetDefaultMemPool: {status:?}")));
        }
        let mut threshold: u64 = u64::MAX;
        let status = sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            &mut threshold as *mut u64 as *mut std::ffi::c_void,
        );
        if status != sys::CUresult::CUDA_SUCCESS {
            return Err(CudaError::Driver(format!("cuMemPoolSetAttribute: {status:?}")));
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic inside cudarc (a missing symbol in an older
/// library, say) into an error: nothing from cudarc may unwind into callers.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(CudaError::Driver(format!("the CUDA library failed: {msg}")))
        }
    }
}
