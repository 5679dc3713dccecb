//! `nabla train` under `mpirun`/`srun`: the world from the launcher's environment (a world
//! of more than one process makes the run data-parallel, with no flag), the run folder
//! agreed on, and any rank's error ending the whole job.

use crate::error::{CliError, CliResult};
use nabla_train::Distributed;
use std::path::PathBuf;

/// The data-parallel setting of this process: `None` for a plain run (no launcher, or a
/// world of one); otherwise MPI is initialized and every rank gets the same settings. A
/// world of several without MPI support in this build is an error, not N separate runs
/// writing one folder.
pub fn from_env(sync_bn: bool, bucket_mb: Option<f64>) -> CliResult<Option<Distributed>> {
    let mb = bucket_mb.unwrap_or(25.0);
    if !(mb.is_finite() && mb > 0.0) {
        return Err(CliError::new(format!(
            "--bucket-mb {mb}: must be a positive number of MiB"
        )));
    }
    let world = nabla_distributed::world_from_env().map_err(CliError::new)?;
    let Some((rank, size)) = world.filter(|&(_, size)| size > 1) else {
        return Ok(None);
    };
    connect(rank, size, sync_bn, (mb * 1024.0 * 1024.0) as usize)
}

#[cfg(feature = "mpi")]
fn connect(rank: usize, size: usize, sync_bn: bool, bucket_bytes: usize) -> CliResult<Option<Distributed>> {
    use nabla_distributed::Comm;
    let comm = nabla_distributed::Mpi::init().ok_or_else(|| CliError::new("MPI was already initialized"))?;
    if (comm.rank(), comm.size()) != (rank, size) {
        return Err(CliError::new(format!(
            "the launcher's environment says rank {rank} of {size}, MPI says rank {} of {}",
            comm.rank(),
            comm.size()
        )));
    }
    Ok(Some(Distributed {
        comm: std::rc::Rc::new(comm),
        bucket_bytes,
        sync_bn,
    }))
}

#[cfg(not(feature = "mpi"))]
fn connect(rank: usize, size: usize, _sync_bn: bool, _bucket_bytes: usize) -> CliResult<Option<Distributed>> {
    Err(CliError::new(format!(
        "this process is rank {rank} of {size} (a launcher such as mpirun started it), but this nabla was \
         built without MPI; build with `cargo build --release -p nabla-cli --features mpi`"
    )))
}

/// The run folder, made by rank 0 (`make`) and sent to the others, so all agree on it
/// (a new `version_N` is numbered once). Rank 0's failure ends the job.
pub fn shared_folder(d: &Distributed, make: impl FnOnce() -> CliResult<PathBuf>) -> CliResult<PathBuf> {
    let path = match d.is_main() {
        true => abort_on_error(d, make())?.to_string_lossy().into_owned(),
        false => String::new(),
    };
    Ok(PathBuf::from(nabla_distributed::broadcast_string(
        d.comm.as_ref(),
        &path,
        0,
    )))
}

/// `r` as it is, or, on an error, the message with this rank named, and every rank of the
/// job ended (MPI_Abort), so none waits forever on a collective.
pub fn abort_on_error<T>(d: &Distributed, r: CliResult<T>) -> CliResult<T> {
    if let Err(e) = &r {
        eprintln!("error: {e} (rank {} of {})", d.comm.rank(), d.comm.size());
        use std::io::Write;
        let _ = std::io::stderr().flush();
        d.comm.abort(1);
    }
    r
}
