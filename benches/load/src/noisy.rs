//! `noisy_neighbour`: one tenant flooded, another tenant's latency measured.

use std::path::Path;

use crate::{Args, Measured, wrk_paced, wrk_with};

/// Connections flooding tenant A in `noisy_neighbour`.
const NOISY_FLOOD: usize = 256;
/// Connections measuring tenant B in `noisy_neighbour`, each pausing `NOISY_QUIET_DELAY_MS`
/// between requests: a modest, latency-sensitive client (≈ 160 req/s), below the per-tenant
/// limit one would configure.
const NOISY_QUIET: usize = 8;
const NOISY_QUIET_DELAY_MS: u64 = 50;

/// Tenant B's project reads at a modest, paced rate, first alone, then while tenant A is
/// flooded by many connections listing its projects; prints both and returns the latter (its
/// request count includes the flood's, so CPU per 1k requests covers everything served).
/// With per-tenant limits on (`BENCH_TENANT_PER_SECOND` in run.sh) the flood is mostly 429s.
pub(crate) fn noisy_neighbour(args: &Args, noisy: &Path, quiet: &Path) -> anyhow::Result<Measured> {
    let measure = |seconds| {
        wrk_paced(
            args,
            "read",
            quiet,
            seconds,
            NOISY_QUIET,
            NOISY_QUIET_DELAY_MS,
        )
    };
    measure(2)?; // warm-up
    let alone = measure(args.duration)?;
    println!(
        "  (tenant B alone, {NOISY_QUIET} connections pausing {NOISY_QUIET_DELAY_MS} ms: {:.0} req/s, \
         p50 {:.2} ms, p99 {:.2} ms, {} non-2xx)",
        alone.rps, alone.p50, alone.p99, alone.errors
    );
    let flood = {
        let (args, noisy) = (args.clone(), noisy.to_path_buf());
        std::thread::spawn(move || wrk_with(&args, "list", &noisy, args.duration + 4, NOISY_FLOOD))
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let during = measure(args.duration)?;
    let flood = flood
        .join()
        .map_err(|_| anyhow::anyhow!("flood panicked"))??;
    println!(
        "  (tenant B during the flood: p50 {:.2} ms, p99 {:.2} ms, {} non-2xx; tenant A's flood, \
         {NOISY_FLOOD} connections: {:.0} req/s, {} non-2xx of {:.0})",
        during.p50, during.p99, during.errors, flood.rps, flood.errors, flood.requests
    );
    Ok(Measured {
        requests: during.requests + flood.requests,
        ..during
    })
}
