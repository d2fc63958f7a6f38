//! Buffers that count themselves (so `attend info` can report GPU bytes in use) and a pool that
//! recycles scratch buffers between forward passes instead of reallocating them every token.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// GPU buffers created through one `Gpu` and still alive: their count and bytes (weights, KV
/// cache, scratch held by the pool, free or not).
#[derive(Debug, Default)]
pub struct Live {
    pub(crate) bytes: AtomicU64,
    pub(crate) buffers: AtomicU64,
}

impl Live {
    fn add(&self, size: u64) {
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.buffers.fetch_add(1, Ordering::Relaxed);
    }
    fn sub(&self, size: u64) {
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        self.buffers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A `wgpu::Buffer` whose size is counted in its device's live bytes until it is dropped.
#[derive(Debug)]
pub struct Buffer {
    raw: wgpu::Buffer,
    live: Arc<Live>,
}

impl Buffer {
    pub(crate) fn new(raw: wgpu::Buffer, live: Arc<Live>) -> Buffer {
        live.add(raw.size());
        Buffer { raw, live }
    }
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.raw
    }
}

impl Deref for Buffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.raw
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.live.sub(self.raw.size());
        self.raw.destroy();
    }
}

/// Free buffers by (size class, usage). Sizes round up to a power of two (min 256 B) so that
/// buffers of slightly different sizes are interchangeable; at most 2x waste on scratch only.
pub struct BufferPool {
    free: Mutex<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
    live: Arc<Live>,
}

impl BufferPool {
    pub(crate) fn new(live: Arc<Live>) -> BufferPool {
        BufferPool {
            free: Mutex::default(),
            live,
        }
    }

    pub fn size_class(size: u64) -> u64 {
        size.max(256).next_power_of_two()
    }

    /// A buffer of at least `size` bytes with `usage`; contents are undefined.
    pub fn take(
        &self,
        device: &wgpu::Device,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let class = Self::size_class(size);
        if let Some(b) = self
            .free
            .lock()
            .unwrap()
            .get_mut(&(class, usage.bits()))
            .and_then(|v| v.pop())
        {
            return b;
        }
        self.live.add(class);
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pooled"),
            size: class,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Return a buffer obtained from [`take`](Self::take). Safe to call while GPU work that uses
    /// it is still queued: a later user's work is submitted after it.
    pub fn give(&self, buf: wgpu::Buffer) {
        let key = (buf.size(), buf.usage().bits());
        self.free.lock().unwrap().entry(key).or_default().push(buf);
    }

    /// Release every free buffer (e.g. after unloading a model).
    pub fn trim(&self) {
        for (_, v) in self.free.lock().unwrap().drain() {
            for b in v {
                self.live.sub(b.size());
                b.destroy();
            }
        }
    }
}
