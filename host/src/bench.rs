//! Measures the plugin runtime on the template plugin (`homeward bench plugins`).
//!
//! Each figure is the median of several timed batches, printed beside its
//! target and beside a baseline measured in the same run:
//! - instantiate and the empty call: the same runtime on wasmtime's default
//!   on-demand allocator instead of the pooling allocator, i.e. what pooling buys;
//! - the 1 MiB call: a native copy of 1 MiB, the floor any call that moves the
//!   argument into the guest must pay.

use crate::embedded;
use crate::plugin::{PluginSettings, Runtime, RuntimeOptions};
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub name: &'static str,
    /// Median time per operation.
    pub median: Duration,
    /// The target on the reference machine (2 cores), if any.
    pub target: Option<Duration>,
    /// The baseline's name and median time per operation, if any.
    pub baseline: Option<(&'static str, Duration)>,
}

/// Median per-operation time of `batches` batches of `per_batch` runs of `op`.
fn median_per_op(
    batches: usize,
    per_batch: u32,
    mut op: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..per_batch {
            op()?;
        }
        samples.push(start.elapsed() / per_batch.max(1));
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

/// Runs the benchmark; `scale` multiplies the iteration counts.
pub fn run(scale: u32) -> anyhow::Result<Vec<Figure>> {
    let scale = scale.max(1);
    let wasm = embedded::TEMPLATE.wasm;
    let cache = tempfile::tempdir().context("creating a scratch compile cache")?;
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeOptions::default()
    })?;
    let engine = runtime.engine().clone();

    let cold = median_per_op(5, 1, || {
        wasmtime::component::Component::new(&engine, wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })?;
    // The first load fills the cache; the timed ones read it.
    runtime.compile(wasm, "template")?;
    let cached = median_per_op(7, 10 * scale, || {
        runtime.compile(wasm, "template")?;
        Ok(())
    })?;

    let plugin = runtime.load(wasm, "embedded:template", PluginSettings::default())?;
    let instantiate = median_per_op(7, 500 * scale, || {
        plugin.instantiate()?;
        Ok(())
    })?;
    let mut instance = plugin.instantiate()?;
    let empty_call = median_per_op(7, 20_000 * scale, || Ok(instance.ping()?))?;
    let payload = vec![0x5au8; 1 << 20];
    let mib_call = median_per_op(7, 200 * scale, || {
        instance.ping_payload(&payload)?;
        Ok(())
    })?;

    let baseline = measure_on_demand(wasm, scale)?;
    let mut sink = vec![0u8; 1 << 20];
    let memcpy = median_per_op(7, 200 * scale, || {
        sink.copy_from_slice(std::hint::black_box(&payload));
        std::hint::black_box(&sink);
        Ok(())
    })?;

    Ok(vec![
        Figure {
            name: "cold compile",
            median: cold,
            target: None,
            baseline: None,
        },
        Figure {
            name: "load from cache",
            median: cached,
            target: None,
            baseline: Some(("cold compile", cold)),
        },
        Figure {
            name: "instantiate",
            median: instantiate,
            target: Some(Duration::from_micros(10)),
            baseline: Some(("on-demand allocator", baseline.0)),
        },
        Figure {
            name: "empty call",
            median: empty_call,
            target: Some(Duration::from_micros(1)),
            baseline: Some(("on-demand allocator", baseline.1)),
        },
        Figure {
            name: "1 MiB call",
            median: mib_call,
            target: Some(Duration::from_micros(30)),
            baseline: Some(("native 1 MiB copy", memcpy)),
        },
    ])
}

/// Prints the benchmark as a table.
pub fn run_and_print(scale: u32, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let figures = run(scale)?;
    writeln!(
        out,
        "plugin runtime benchmark: template plugin ({} bytes)",
        embedded::TEMPLATE.wasm.len()
    )?;
    writeln!(
        out,
        "{:<16} {:>12} {:>10} {:>9}   {:<20} {:>12} {:>9}",
        "measure", "median", "target", "/target", "baseline", "median", "/baseline"
    )?;
    for f in &figures {
        let target = f.target.map_or("-".to_string(), |t| format!("{t:?}"));
        let vs_target = f.target.map_or("-".to_string(), |t| ratio(f.median, t));
        let (bname, btime, vs_base) = match f.baseline {
            Some((n, t)) => (n, format!("{t:?}"), ratio(f.median, t)),
            None => ("-", "-".to_string(), "-".to_string()),
        };
        writeln!(
            out,
            "{:<16} {:>12} {:>10} {:>9}   {:<20} {:>12} {:>9}",
            f.name,
            format!("{:?}", f.median),
            target,
            vs_target,
            bname,
            btime,
            vs_base
        )?;
    }
    writeln!(
        out,
        "(ratios: measured / reference; below 1.00x is faster) total {:?}",
        started.elapsed()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!(
        "{:.2}x",
        a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
    )
}

/// Instantiate and empty-call times with the on-demand allocator.
fn measure_on_demand(wasm: &[u8], scale: u32) -> anyhow::Result<(Duration, Duration)> {
    let runtime = Runtime::new(RuntimeOptions {
        pooling: false,
        ..RuntimeOptions::default()
    })?;
    let plugin = runtime.load(wasm, "embedded:template", PluginSettings::default())?;
    let instantiate = median_per_op(7, 200 * scale, || {
        plugin.instantiate()?;
        Ok(())
    })?;
    let mut instance = plugin.instantiate()?;
    let empty_call = median_per_op(7, 20_000 * scale, || Ok(instance.ping()?))?;
    Ok((instantiate, empty_call))
}
