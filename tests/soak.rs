//! Faults and long runs (issue #8), natively on the committed tiny Qwen2 model: cancelling a
//! generation at any point (the token callback saying stop, or the future dropped between any two
//! polls, mid-prefill or mid-readback) leaks no GPU buffer and leaves the engine answering exactly
//! as before; 1,000 short generations leave the GPU buffer count and bytes where they started.
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{Engine, GenParams, LoadOptions};
use std::future::Future;
use std::path::PathBuf;
use std::task::{Context, Poll, Waker};

fn engine() -> Engine {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    let opts = LoadOptions {
        context: Some(128),
        batch: 8,
        ..Default::default()
    };
    pollster::block_on(Engine::load_file(&path, &opts)).expect("tiny-qwen2 loads")
}

fn params(max_tokens: u32, seed: Option<u64>) -> GenParams {
    let mut p = GenParams {
        max_tokens,
        ignore_eog: true,
        ..Default::default()
    };
    match seed {
        Some(s) => {
            p.sampler.temperature = 0.8;
            p.sampler.seed = Some(s);
        }
        None => p.sampler.temperature = 0.0,
    }
    p
}

fn ids(e: &mut Engine, prompt: &[u32], p: &GenParams) -> Vec<u32> {
    let mut out = Vec::new();
    pollster::block_on(e.generate(prompt, p, |t| {
        out.push(t.id);
        true
    }))
    .expect("generation");
    out
}

/// (buffers, bytes) alive on the engine's GPU.
fn live(e: &Engine) -> (u64, u64) {
    (e.gpu.buffers_in_use(), e.gpu.bytes_in_use())
}

#[test]
fn cancelling_anywhere_leaks_nothing() {
    let mut e = engine();
    // 20 tokens: prefill takes three batches of 8.
    let prompt: Vec<u32> = (5..25).collect();
    let greedy = params(6, None);
    let want = ids(&mut e, &prompt, &greedy);
    e.reset();
    // A second answer's prefill records while the first answer's decode plan holds its
    // parameter buffers: after it the buffer pool has its steady size.
    assert_eq!(ids(&mut e, &prompt, &greedy), want);
    e.reset();
    let base = live(&e);
    assert!(base.0 > 0 && base.1 > 0, "{base:?}");

    // The callback stops the generation after k tokens.
    for k in 0..4 {
        let mut n = 0;
        pollster::block_on(e.generate(&prompt, &greedy, |_| {
            n += 1;
            n <= k
        }))
        .unwrap();
        e.reset();
        assert_eq!(live(&e), base, "stopped after {k} tokens");
    }

    // The future is dropped after `polls` polls: mid-prefill, between a submit and its readback,
    // mid-decode. The GPU keeps running meanwhile.
    let mut reached_the_end = false;
    for polls in 1..200 {
        let mut fut = Box::pin(e.generate(&prompt, &greedy, |_| true));
        let mut cx = Context::from_waker(Waker::noop());
        let mut done = false;
        for _ in 0..polls {
            if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                r.unwrap();
                done = true;
                break;
            }
            // Let a little GPU work finish (a readback may or may not have arrived).
            std::thread::yield_now();
        }
        drop(fut);
        e.gpu.device.poll(wgpu::PollType::wait_indefinitely()).ok();
        e.reset();
        assert_eq!(live(&e), base, "dropped after {polls} polls");
        // Usable, and answering exactly as before.
        if polls % 25 == 1 {
            assert_eq!(ids(&mut e, &prompt, &greedy), want, "after {polls} polls");
            e.reset();
        }
        if done {
            reached_the_end = true;
            break;
        }
    }
    assert!(reached_the_end, "a generation needs fewer than 200 polls");
    assert_eq!(ids(&mut e, &prompt, &greedy), want);
}

#[test]
fn a_thousand_generations_hold_gpu_memory_flat() {
    let mut e = engine();
    let run = |e: &mut Engine, i: u64| {
        // Varying prompts and lengths, sampled and greedy; conversations that share a prefix
        // (the KV-cache reuse path) and ones that do not.
        let len = 1 + (i % 7) as u32;
        let prompt: Vec<u32> = (0..len)
            .map(|j| 5 + ((i * 31 + j as u64 * 7) % 400) as u32)
            .collect();
        let seed = (!i.is_multiple_of(3)).then_some(i);
        let got = ids(e, &prompt, &params(1 + (i % 4) as u32, seed));
        assert!(!got.is_empty());
        if i.is_multiple_of(5) {
            e.reset();
        }
    };
    // Warm up: the pool reaches its steady set of scratch buffers.
    for i in 0..20 {
        run(&mut e, i);
    }
    let start = live(&e);
    let t0 = std::time::Instant::now();
    for i in 0..1000 {
        run(&mut e, 1000 + i);
    }
    let end = live(&e);
    eprintln!(
        "soak: 1000 generations in {:.1} s; GPU buffers {} -> {}, bytes {} -> {}",
        t0.elapsed().as_secs_f64(),
        start.0,
        end.0,
        start.1,
        end.1
    );
    assert_eq!(
        start, end,
        "GPU buffers (count, bytes) grew over 1,000 generations"
    );
}
