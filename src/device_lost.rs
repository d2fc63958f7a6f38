//! Device loss (a driver reset, a browser reclaiming the GPU, `destroy()`): remembered when wgpu
//! reports it, so that every later call on the engine fails with an error saying the model must
//! be loaded again, instead of a wgpu panic or silent garbage from a dead device.

use crate::{Error, Result};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct DeviceLost(Arc<Mutex<Option<String>>>);

impl DeviceLost {
    /// Watch `device` (one watcher per device: wgpu keeps only the last callback).
    pub fn watch(device: &wgpu::Device) -> DeviceLost {
        let flag = DeviceLost::default();
        let f = flag.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut g = f.0.lock().unwrap_or_else(|e| e.into_inner());
            *g = Some(format!("{reason:?}: {msg}"));
        });
        flag
    }

    /// Lets wgpu notice a loss (natively it reports one only while polling; browsers deliver
    /// it between tasks), then [`check`](Self::check)s. Does not block.
    pub fn poll(&self, device: &wgpu::Device) -> Result<()> {
        let _ = device.poll(wgpu::PollType::Poll);
        self.check()
    }

    /// An error once the device is lost.
    pub fn check(&self) -> Result<()> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(Error::Gpu(format!(
                "the GPU device was lost ({why}); load the model again"
            ))),
            None => Ok(()),
        }
    }
}
