//! NCCL: summing a device buffer across processes, one GPU each, without
//! the values leaving GPU memory.
//!
//! ```text
//! rank 0: id = new_unique_id()        128 opaque bytes (an address to meet at)
//! all:    the id travels to every rank by another transport (MPI)
//! rank r: NcclComm::new(cuda:local, r, N, id)     every rank, together
//!         all_reduce_sum_in_place(buffer [n] f32)  buffer = Σ over ranks
//! ```
//!
//! The collective is queued on the device's one stream, after the kernels
//! that wrote the buffer and before those that read it, like any kernel.
//!
//! Like cudarc's other libraries, NCCL is opened at run time (`libnccl.so.2`
//! comes with the CUDA toolkit's NCCL package or the `nvidia-nccl-cu13` pip
//! package), and cudarc *panics* when it is missing or lacks a symbol. So
//! [`require_nccl`] checks first, every call runs under `catch_panic`, and
//! the communicator's own `Drop` (which `expect`s NCCL's abort to succeed)
//! runs under it too: no failure here reaches a caller as a panic.
//!
//! cudarc tries the names `libnccl.so`, `libnccl.so.<CUDA major>`, …,
//! `libnccl.so.1`, never `libnccl.so.2`, which is the only file the pip
//! package ships. So a folder that holds `libnccl.so.2` alone needs a link
//! `libnccl.so → libnccl.so.2` beside it; the error says so.

use std::mem::ManuallyDrop;
use std::sync::Arc;

use cudarc::driver::CudaViewMut;
use cudarc::nccl::{Comm, Id, ReduceOp};

use super::device::{catch_panic, CudaDevice};
use super::error::{CudaError, Result};

/// The size of NCCL's unique id, the bytes rank 0 sends every other rank.
pub const NCCL_ID_BYTES: usize = 128;

/// The file NCCL's packages install.
const NCCL_FILE: &str = "libnccl.so.2";

const NCCL_HINT: &str = "`pip install nvidia-nccl-cu13` (for CUDA 12: nvidia-nccl-cu12), put its lib folder \
    (site-packages/nvidia/nccl/lib) on LD_LIBRARY_PATH and add the link libnccl.so -> libnccl.so.2 there";

const NCCL_LINK_HINT: &str = "it loads, but cudarc opens NCCL as libnccl.so: add the link \
    libnccl.so -> libnccl.so.2 in its folder (on LD_LIBRARY_PATH)";

/// Ok when cudarc can open NCCL; else an error naming `libnccl.so.2` and
/// what to install or link.
pub fn require_nccl() -> Result<()> {
    // SAFETY: only tries to dlopen the candidate names; no symbol is called.
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        return Ok(());
    }
    // SAFETY: opening a shared library runs its initialisers; NCCL's only
    // set up its own state. The handle is closed again at once.
    let installed = unsafe { libloading::Library::new(NCCL_FILE) }.is_ok();
    Err(CudaError::MissingLibrary { library: NCCL_FILE, hint: if installed { NCCL_LINK_HINT } else { NCCL_HINT } })
}

/// A new NCCL unique id (rank 0 makes it; the others receive its bytes).
pub fn new_unique_id() -> Result<[u8; NCCL_ID_BYTES]> {
    require_nccl()?;
    let id = catch_panic(|| Id::new().map_err(nccl_error))?;
    Ok(id.internal().map(|c| c as u8))
}

/// This process's member of an NCCL communicator: rank `rank` of
/// `world_size`, on `device`'s GPU and stream.
pub struct NcclComm {
    // Dropped by hand (see `Drop`): cudarc's drop panics on an NCCL error.
    comm: ManuallyDrop<Comm>,
    device: Arc<CudaDevice>,
}

impl NcclComm {
    /// Joins the communicator that `id` names; every rank of `world_size`
    /// must call this with the same id (it returns once all have).
    pub fn new(device: Arc<CudaDevice>, rank: usize, world_size: usize, id: &[u8; NCCL_ID_BYTES]) -> Result<NcclComm> {
        require_nccl()?;
        if rank >= world_size || i32::try_from(world_size).is_err() {
            return Err(CudaError::Nccl(format!("rank {rank} of {world_size} processes")));
        }
        let id = Id::uninit(id.map(|b| b as std::ffi::c_char));
        let comm = catch_panic(|| {
            // NCCL joins on the calling thread's current GPU.
            device.context().bind_to_thread()?;
            Comm::from_rank(device.stream().clone(), rank, world_size, id).map_err(nccl_error)
        })?;
        Ok(NcclComm { comm: ManuallyDrop::new(comm), device })
    }

    pub fn device(&self) -> &Arc<CudaDevice> {
        &self.device
    }

    /// Replaces `buffer` on every rank by the element-wise sum over the
    /// ranks (queued on the device's stream; every rank calls it in the
    /// same order with the same length).
    pub fn all_reduce_sum_in_place(&self, buffer: &mut CudaViewMut<'_, f32>) -> Result<()> {
        catch_panic(|| {
            self.comm.all_reduce_in_place(buffer, &ReduceOp::Sum).map_err(nccl_error)?;
            Ok(())
        })
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        let comm = &mut self.comm;
        // An NCCL error while tearing down cannot be acted on; it must not
        // become a panic (inside another unwind it would abort).
        // SAFETY: `comm` is dropped here once and never used again.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(comm) }));
    }
}

fn nccl_error(e: cudarc::nccl::result::NcclError) -> CudaError {
    CudaError::Nccl(format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether or not NCCL is installed, asking for it is never a panic;
    /// without it the error names the file and the pip package.
    #[test]
    fn missing_nccl_is_an_error_naming_the_library_and_package() {
        let outcome = new_unique_id();
        eprintln!("asking for NCCL here: {outcome:?}");
        match outcome {
            Ok(id) => assert!(id.iter().any(|&b| b != 0), "a unique id is not all zeros"),
            Err(CudaError::MissingLibrary { library, hint }) => {
                assert_eq!(library, "libnccl.so.2");
                assert!(hint == NCCL_HINT || hint == NCCL_LINK_HINT, "{hint}");
                let message = CudaError::MissingLibrary { library, hint }.to_string();
                assert!(message.starts_with("libnccl.so.2 not found: "), "{message}");
                assert!(!message.contains('\n'), "one line: {message}");
            }
            // Installed, but NCCL itself failed (no network interface to
            // build an id from): still an error, not a panic.
            Err(other) => assert!(matches!(other, CudaError::Nccl(_)), "{other}"),
        }
    }

    #[test]
    fn the_hints_name_the_pip_package_and_the_link() {
        assert!(NCCL_HINT.contains("nvidia-nccl-cu13") && NCCL_HINT.contains("libnccl.so -> libnccl.so.2"));
        assert!(NCCL_LINK_HINT.contains("libnccl.so -> libnccl.so.2"));
    }
}
