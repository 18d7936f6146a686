//! The node's memory budget: from the `memory_limiter` processors (or the machine's memory) to
//! the byte limits [`crate::memory`] enforces, sized once at start-up on the main thread.

use crate::config::{Config, MemoryLimit, MemoryLimiter, Processor};
use crate::gateway::StartError;

/// The node's memory budget without a `memory_limiter` in any pipeline: half the machine's (or
/// the cgroup's) memory, with the Collector's default spike allowance of a fifth of the limit.
const LIMIT_PERCENTAGE_DEFAULT: u64 = 50;

/// The (soft, hard) byte limits of a `memory_limiter` (refusing starts at `limit - spike` in the
/// Collector; here that is where the trace buffer's early decisions start, and the limit itself,
/// counting the exporters' batches too, is where refusing starts).
fn byte_limits(limiter: Option<&MemoryLimiter>) -> Result<(u64, u64), StartError> {
    const MIB: u64 = 1 << 20;
    let of_total = |percent: u64| -> Result<u64, StartError> {
        let total = crate::host::memory_bytes().ok_or_else(|| {
            StartError::Machine(
                "cannot read the machine's memory size (/proc/meminfo) to size the memory \
                 budget; give memory_limiter a limit_mib"
                    .to_string(),
            )
        })?;
        Ok(total / 100 * percent)
    };
    let (hard, spike) = match limiter.map(|l| l.limit) {
        Some(MemoryLimit::Mib {
            limit_mib,
            spike_limit_mib,
        }) => (u64::from(limit_mib) * MIB, u64::from(spike_limit_mib) * MIB),
        Some(MemoryLimit::Percentage {
            limit_percentage,
            spike_limit_percentage,
        }) => (
            of_total(u64::from(limit_percentage))?,
            of_total(u64::from(spike_limit_percentage))?,
        ),
        None => {
            let hard = of_total(LIMIT_PERCENTAGE_DEFAULT)?;
            (hard, hard / 5)
        }
    };
    Ok((hard.saturating_sub(spike), hard))
}

/// The node's (soft, hard) memory budget: the tightest `memory_limiter` any pipeline names (the
/// Collector's limiters each watch the whole process, so the lowest one is the one that binds),
/// or the default share of memory; then capped at `shards.memory_per_shard_mib` × `shards`
/// where the profile sets it, keeping the spike allowance's share of the limit. Without a
/// limiter and without a readable memory size, the budget is unbounded unless traces are
/// sampled, whose buffers need one.
pub(crate) fn memory_budget(config: &Config, shards: usize) -> Result<(u64, u64), StartError> {
    let (soft, hard) = uncapped_budget(config)?;
    let Some(per_shard_mib) = config.shards.memory_per_shard_mib else {
        return Ok((soft, hard));
    };
    let cap = u64::from(per_shard_mib) * (1 << 20) * shards as u64;
    if cap >= hard {
        return Ok((soft, hard));
    }
    // The spike allowance keeps its share: soft / hard as before, in u128 so no product wraps.
    let soft_capped = (u128::from(cap) * u128::from(soft) / u128::from(hard.max(1))) as u64;
    Ok((soft_capped, cap))
}

fn uncapped_budget(config: &Config) -> Result<(u64, u64), StartError> {
    let mut tightest: Option<(u64, u64)> = None;
    for pipeline in &config.service.pipelines {
        for id in &pipeline.processors {
            if let Some(Processor::MemoryLimiter(limiter)) = config.processors.by_id.get(id) {
                let limits = byte_limits(Some(limiter))?;
                if tightest.is_none_or(|(_, hard)| limits.1 < hard) {
                    tightest = Some(limits);
                }
            }
        }
    }
    match (tightest, byte_limits(None)) {
        (Some(limits), _) | (None, Ok(limits)) => Ok(limits),
        (None, Err(err)) => {
            let samples = config
                .processors
                .by_id
                .values()
                .any(|p| matches!(p, Processor::TailSampling(_)));
            if samples {
                return Err(err);
            }
            tracing::warn!("{err}; the memory budget is unbounded");
            Ok((u64::MAX, u64::MAX))
        }
    }
}
