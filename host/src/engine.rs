//! The wasmtime engine every workload on a host shares.
//!
//! One engine per host: pooling allocator for cheap per-request instances,
//! epoch interruption so no guest can hold a thread past its deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::workload::CompiledComponents;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// How often the epoch advances; a looping guest yields at this rate and is
/// interrupted at most this late after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine settings a host operator may change. Defaults suit a small host.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instances (all components, links included) alive at once on this host. Default 1,000.
    pub max_instances: u32,
    /// Largest linear memory any instance may have; per-component limits must fit. Default 1 GiB.
    pub max_instance_memory: u64,
    /// Where compiled code is kept across restarts, keyed by the component's
    /// bytes and the engine's configuration (wasmtime's own cache, so no
    /// `unsafe` load of ours). Default: none, every start compiles.
    pub compiled_cache: Option<CompiledCache>,
}

/// A directory of compiled code and the size it is trimmed to.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// Past this many bytes, least recently used entries are removed.
    pub max_bytes: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 1_000,
            max_instance_memory: 1 << 30,
            compiled_cache: None,
        }
    }
}

/// Failure to set up the engine.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasmtime engine: {0}")]
pub struct EngineError(String);

/// The shared engine plus the thread that advances its epoch.
#[derive(Clone)]
pub struct HostEngine {
    engine: Engine,
    settings: EngineSettings,
    compiled: CompiledComponents,
    _ticker: Arc<EpochTicker>,
}

impl HostEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances.saturating_mul(4))
            .total_memories(settings.max_instances)
            .total_tables(settings.max_instances.saturating_mul(2))
            .total_stacks(settings.max_instances)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .max_memory_size(usize::try_from(settings.max_instance_memory).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(compiled) = &settings.compiled_cache {
            let mut cache = CacheConfig::new();
            cache
                .with_directory(&compiled.dir)
                .with_files_total_size_soft_limit(compiled.max_bytes);
            let cache = Cache::new(cache).map_err(|e| {
                EngineError(format!(
                    "compiled-code cache in {}: {e:#}",
                    compiled.dir.display()
                ))
            })?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(HostEngine {
            engine,
            settings,
            compiled: CompiledComponents::default(),
            _ticker: Arc::new(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Its compiled components, shared by content.
    pub fn compiled(&self) -> &CompiledComponents {
        &self.compiled
    }

    /// The settings the engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("trellis-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::error!("cannot start the epoch thread: {e}"));
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
