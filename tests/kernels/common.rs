//! Shared test helpers: the `gpu_test!` macro (one body, native + browser), a seeded RNG, and
//! closeness checks that report the worst element.

#![allow(dead_code)]

pub use attend::gpu::Gpu;

/// Declares an async GPU test that runs natively (blocking on it) and, on wasm32, in the browser.
macro_rules! gpu_test {
    // `ignore` spelled out: wasm-bindgen-test finds it only as plain tokens after its own
    // attribute, and a captured `meta` reaches it wrapped in an invisible group.
    (#[ignore = $why:tt] async fn $name:ident() $body:block) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        #[ignore = $why]
        fn $name() {
            pollster::block_on(async $body)
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        #[ignore = $why]
        async fn $name() $body
    };
    ($(#[$m:meta])* async fn $name:ident() $body:block) => {
        $(#[$m])*
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on(async $body)
        }
        $(#[$m])*
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() $body
    };
}

/// A `Gpu` on the default adapter; a test fails (never skips) when there is none.
pub async fn gpu() -> Gpu {
    // The f32-activation matvec is what the kernel tests check unless a test asks for int8 (a
    // browser's CPU adapter would take int8 by default; browser tests run one at a time).
    #[cfg(target_arch = "wasm32")]
    attend::kernels::matvec_i8::force(Some(false));
    // Natively the tests share the process's device (`Gpu::new`); in a browser each opens its
    // own, as the suite's few hundred pipelines would otherwise all stay compiled in one device.
    #[cfg(not(target_arch = "wasm32"))]
    let gpu = Gpu::new().await;
    #[cfg(target_arch = "wasm32")]
    let gpu = Gpu::private().await;
    match gpu {
        Ok(g) => g,
        Err(e) => panic!("no GPU adapter for the kernel tests: {e}"),
    }
}

/// xorshift64*: deterministic, dependency-free random data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| (self.f32() * 2.0 - 1.0) * scale).collect()
    }
    /// Standard-normal-ish values (sum of uniforms), like real activations and weights.
    pub fn normal(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((0..4).map(|_| self.f32()).sum::<f32>() - 2.0) * std * 1.732)
            .collect()
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

/// Assert |got - want| <= atol + rtol * |want| everywhere; the message names the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs reference {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g} (reference {w})");
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 0.0,
        "{what}: element {i} is {} but the reference is {} (atol {atol}, rtol {rtol})",
        got[i],
        want[i]
    );
}

/// Largest absolute difference (for reporting and relative-to-scale checks).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Seconds per repetition of what `record` puts in one pass, run `reps` times and waited for by
/// reading `n` floats of `y` (returned too): the timing tests' measurement.
pub async fn timed(
    gpu: &Gpu,
    reps: usize,
    y: &wgpu::Buffer,
    n: usize,
    mut record: impl FnMut(&mut attend::gpu::Recorder),
) -> (f64, Vec<f32>) {
    let t = attend::engine::now_s();
    let mut rec = gpu.recorder("timed");
    for _ in 0..reps {
        record(&mut rec);
    }
    rec.submit();
    let out = gpu.read(y, 0, n).await.unwrap();
    ((attend::engine::now_s() - t) / reps as f64, out)
}

/// One line of a timing test's report: the browser's console, or stderr natively.
pub fn report(line: &str) {
    #[cfg(target_arch = "wasm32")]
    web_sys::console::log_1(&line.into());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{line}");
}
