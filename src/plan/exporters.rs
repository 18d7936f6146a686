//! From the configuration's exporter types to the export layer's settings: the Collector's
//! per-process figures become each shard's share, and every unbounded value gets a bound.

use std::sync::Arc;
use std::time::Duration;

use tailgate_wire::Signal;

use std::os::unix::fs::DirBuilderExt;

use crate::config::{self, Config, Exporter as ExporterConfig};
use crate::export::{
    self, Backends, DebugSettings, ExporterSettings, LoadBalancingSettings, OtlpGrpcSettings,
    OtlpHttpSettings, QueueSettings, QueueSizer, RetrySettings, Routing, StorageSettings,
};
use crate::gateway::StartError;
use crate::tls::ClientTls;

fn retry(config: &config::RetryOnFailure) -> RetrySettings {
    RetrySettings {
        enabled: config.enabled,
        initial_interval: config.initial_interval,
        multiplier: config.multiplier,
        randomization_factor: config.randomization_factor,
        max_interval: config.max_interval,
        // The Collector reads 0 as "retry forever"; tailgate keeps every loop bounded, so no
        // limit becomes the longest the Collector documents as a default, an hour.
        max_elapsed_time: config.max_elapsed_time.unwrap_or(Duration::from_secs(3600)),
    }
}

/// The Collector's queue figures are per exporter; tailgate runs one exporter instance per
/// shard, so each gets its share, and the node holds what the configuration says.
fn queue(config: &config::SendingQueue, shards: usize) -> QueueSettings {
    QueueSettings {
        enabled: config.enabled,
        num_consumers: (config.num_consumers as usize).div_ceil(shards).max(1),
        queue_size: usize::try_from(config.queue_size.div_ceil(shards as u64))
            .unwrap_or(usize::MAX)
            .max(1),
        sizer: match config.sizer {
            config::QueueSizer::Requests => QueueSizer::Requests,
            config::QueueSizer::Items => QueueSizer::Items,
            config::QueueSizer::Bytes => QueueSizer::Bytes,
        },
        block_on_overflow: config.block_on_overflow,
        drop_oldest: config.drop_oldest_on_overflow,
        // Set by `storage` at start, once the directory is checked.
        storage: None,
    }
}

/// The directory an exporter's queue for one pipeline takes inside a `file_storage` directory
/// (each pipeline runs its own instance of the exporter): the exporter's and the pipeline's
/// ids with every character but letters, digits, `-` and `.` written as `_`, as the Collector
/// names its storage clients (`otlp/central` in `traces` → `exporter_otlp_central_traces`).
fn queue_directory_name(exporter: &config::ComponentId, pipeline: &config::PipelineId) -> String {
    let id: String = format!("{exporter}_{pipeline}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("exporter_{id}")
}

/// The persistent queue of `exporter` (whose configuration is `config`), if its
/// `sending_queue.storage` names one: the `file_storage` directory checked — created if it is
/// missing and `create_directory` says so — and each shard's share of `max_size`.
pub(crate) fn storage(
    root: &Config,
    id: &config::ComponentId,
    config: &ExporterConfig,
    pipeline: &config::PipelineId,
    shards: usize,
) -> Result<Option<StorageSettings>, StartError> {
    let queue = match config {
        ExporterConfig::Otlp(otlp) => &otlp.sending_queue,
        ExporterConfig::OtlpHttp(http) => &http.sending_queue,
        ExporterConfig::Debug(_) | ExporterConfig::LoadBalancing(_) => return Ok(None),
    };
    let Some(extension_id) = &queue.storage else {
        return Ok(None);
    };
    // The configuration checked that it names an enabled file_storage.
    let Some(config::Extension::FileStorage(storage)) = root.extensions.get(extension_id) else {
        return Ok(None);
    };
    let key = format!("extensions.{extension_id}.directory");
    let dir = &storage.directory;
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(StartError::Machine(format!(
                "{key}: {} is not a directory",
                dir.display()
            )))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && storage.create_directory => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(storage.directory_permissions)
                .create(dir)
                .map_err(|err| {
                    StartError::Machine(format!("{key}: cannot create {}: {err}", dir.display()))
                })?;
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(StartError::Machine(format!(
                "{key}: {} does not exist; create it, or set `create_directory: true` (as in \
                 the Collector, a missing directory is not created unless asked)",
                dir.display()
            )))
        }
        Err(err) => {
            return Err(StartError::Machine(format!(
                "{key}: cannot use {}: {err}",
                dir.display()
            )))
        }
    }
    let directory = dir.join(queue_directory_name(id, pipeline));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(storage.directory_permissions)
        .create(&directory)
        .map_err(|err| {
            StartError::Machine(format!(
                "{key}: cannot create the queue directory {}: {err}",
                directory.display()
            ))
        })?;
    let max_bytes = storage.max_size.map(|bytes| bytes / shards as u64);
    // A batch weighs up to `BATCH_BYTES_MAX_DEFAULT`; a cap of fewer than two would leave a
    // queue room for one batch at a time, or none.
    let least = 2 * export::BATCH_BYTES_MAX_DEFAULT as u64;
    if let Some(share) = max_bytes.filter(|&share| share < least) {
        return Err(StartError::Unsupported(format!(
            "extensions.{extension_id}.max_size: gives each of the {shards} shard(s) {share} \
             bytes for exporter {id}'s queue; each needs at least {least} (two batches of \
             the largest size), so max_size must be at least {}",
            least * shards as u64
        )));
    }
    Ok(Some(StorageSettings {
        extension: extension_id.to_string(),
        directory,
        fsync: storage.fsync,
        write_delay: storage.write_delay,
        max_bytes,
        shards,
    }))
}

fn compression(config: config::Compression) -> export::Compression {
    match config {
        config::Compression::None => export::Compression::None,
        config::Compression::Gzip => export::Compression::Gzip,
        config::Compression::Zstd => export::Compression::Zstd,
        config::Compression::Snappy => export::Compression::Snappy,
        config::Compression::Zlib => export::Compression::Zlib,
        config::Compression::Deflate => export::Compression::Deflate,
        config::Compression::Lz4 => export::Compression::Lz4,
    }
}

/// The export layer's form of a `resolver` section.
pub(super) fn backends(resolver: &config::BackendResolver) -> Backends {
    match resolver {
        config::BackendResolver::Static { hostnames } => {
            Backends::Static(hostnames.iter().map(ToString::to_string).collect())
        }
        config::BackendResolver::Dns {
            hostname,
            port,
            interval,
            timeout,
        } => Backends::Dns {
            hostname: hostname.clone(),
            port: *port,
            interval: *interval,
            timeout: *timeout,
        },
    }
}

pub(super) fn otlp_settings(
    otlp: &config::OtlpExporter,
    shards: usize,
    tls: Option<Arc<ClientTls>>,
) -> OtlpGrpcSettings {
    OtlpGrpcSettings {
        endpoint: otlp.endpoint.to_string(),
        tls,
        headers: otlp.headers.clone().into_iter().collect(),
        compression: compression(otlp.compression),
        compression_level: otlp.compression_level,
        timeout: otlp.timeout,
        // Set from the enabled authenticators once every exporter is planned.
        auth: None,
        setter: None,
        retry: retry(&otlp.retry_on_failure),
        queue: queue(&otlp.sending_queue, shards),
        keepalive: otlp.keepalive,
        balancer: otlp.balancer,
        authority: otlp.authority.clone(),
        wait_for_ready: otlp.wait_for_ready,
        pass_metadata: false,
    }
}

/// The export layer's settings for `config` in a pipeline of `signal`; `tls` is its TLS
/// configuration, files read.
pub(crate) fn exporter_settings(
    config: &ExporterConfig,
    signal: Signal,
    shards: usize,
    tls: Option<Arc<ClientTls>>,
) -> ExporterSettings {
    match config {
        ExporterConfig::Otlp(otlp) => ExporterSettings::Otlp(otlp_settings(otlp, shards, tls)),
        ExporterConfig::LoadBalancing(lb) => {
            ExporterSettings::LoadBalancing(LoadBalancingSettings {
                routing: match lb.routing_key(signal) {
                    Some(config::RoutingKey::TraceId) => Routing::TraceId,
                    Some(config::RoutingKey::Service) => Routing::Service,
                    Some(config::RoutingKey::Resource) => Routing::Resource,
                    None => {
                        unreachable!("the configuration checked the routing key of each pipeline")
                    }
                },
                // Every backend gets the `protocol.otlp` settings; its queue is per backend, so the
                // node holds queue_size per backend, as the Collector does.
                otlp: otlp_settings(&lb.protocol, shards, tls),
                backends: backends(&lb.resolver),
                local: None,
            })
        }
        ExporterConfig::OtlpHttp(http) => {
            let url = |signal| http.url(signal).map(ToString::to_string);
            ExporterSettings::OtlpHttp(OtlpHttpSettings {
                // Every signal with a URL has it below, whole; a signal without one (only
                // `logs_endpoint` given, say) has no target, and no pipeline sends it here.
                endpoint: String::new(),
                tls,
                traces_endpoint: url(Signal::Traces),
                metrics_endpoint: url(Signal::Metrics),
                logs_endpoint: url(Signal::Logs),
                headers: http.headers.clone().into_iter().collect(),
                compression: compression(http.compression),
                compression_level: http.compression_level,
                encoding: match http.encoding {
                    config::Encoding::Proto => export::Encoding::Proto,
                    config::Encoding::Json => export::Encoding::Json,
                },
                timeout: http.timeout,
                auth: None,
                setter: None,
                retry: retry(&http.retry_on_failure),
                queue: queue(&http.sending_queue, shards),
                proxy: http.proxy_url.clone(),
                pool: http.pool,
            })
        }
        ExporterConfig::Debug(debug) => ExporterSettings::Debug(DebugSettings {
            verbosity: match debug.verbosity {
                config::Verbosity::Basic => export::Verbosity::Basic,
                config::Verbosity::Normal => export::Verbosity::Normal,
                config::Verbosity::Detailed => export::Verbosity::Detailed,
            },
            // The Collector's figure is per second for the process; each shard prints its share.
            sampling_initial: u64::from(debug.sampling_initial).div_ceil(shards as u64),
            sampling_thereafter: u64::from(debug.sampling_thereafter),
            to_stderr: debug.to_stderr,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Every `retry_on_failure` and debug `sampling_*` key reaches the exporter's settings.
    #[test]
    fn exporter_keys_reach_the_exporter_settings() {
        let config = Config::from_yaml(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    retry_on_failure:\n      multiplier: 2.5\n      randomization_factor: 0\n  debug:\n    sampling_initial: 5\n    sampling_thereafter: 20\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp, debug]\n",
            "test.yaml",
        )
        .expect("valid");
        let ExporterSettings::Otlp(otlp) = exporter_settings(
            &config.exporters.by_id[&config::ComponentId::parse("otlp").unwrap()],
            Signal::Traces,
            2,
            None,
        ) else {
            panic!("an otlp exporter");
        };
        assert_eq!(otlp.retry.multiplier, 2.5);
        assert_eq!(otlp.retry.randomization_factor, 0.0);
        let ExporterSettings::Debug(debug) = exporter_settings(
            &config.exporters.by_id[&config::ComponentId::parse("debug").unwrap()],
            Signal::Traces,
            2,
            None,
        ) else {
            panic!("a debug exporter");
        };
        assert_eq!((debug.sampling_initial, debug.sampling_thereafter), (3, 20));
    }
}
