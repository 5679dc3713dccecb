//! Ctrl-C for a training run: the first one asks the loop to finish its step, save
//! `last.safetensors` and return; a second one, while that checkpoint is being written,
//! ends the process at once (exit code 130, as a shell reports a SIGINT).

use crate::{Result, TrainError};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A flag that SIGINT (Ctrl-C) and SIGTERM raise, to pass to [`crate::fit`].
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal raised it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| TrainError::msg(format!("cannot install the Ctrl-C handler: {e}")))?;
    }
    Ok(stop)
}
