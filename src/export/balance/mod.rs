//! The `loadbalancing` exporter: data spread over backends by consistent hashing, each backend
//! an `otlp` exporter of its own, with the Collector's configuration layout.
//!
//! # Who owns what, which thread runs it
//!
//! Like every exporter, a load balancer belongs to one shard and runs on its executor; each
//! shard builds its own from the same settings — its own ring, its own backend exporters (each
//! with its sending queue, consumers and retries, from `protocol.otlp`), its own view of the
//! membership. Nothing is shared between shards. Ingest already sends every span of a trace
//! to the one shard that owns it, so one shard's ring decides where a whole trace goes.
//!
//! ```text
//!  Pipeline ──Batch──► LoadBalancer::submit ── route (ring, in place) ──► backend Exporter ─► backend
//!                         ▲        ▲                                      (queue, retries)
//!       resolver task ────┘        └──── handback: batches a diverted backend gives up
//!  (static list, or DNS off the shard thread every `interval`)
//! ```
//!
//! # Membership
//!
//! The static resolver's list is the set for good. The DNS resolver looks `hostname` up on the
//! executor's blocking-task thread ([`crate::export::resolve::lookup`]) every `interval`, each
//! lookup bounded by `timeout`; every address is a backend on `port`. An answer that fails or
//! names no address keeps the last set (a DNS outage does not empty the ring). Until the first
//! answer there is no backend, and `submit` waits (the pipeline's push-back) rather than drop.
//!
//! # Nothing queued is lost when the set changes
//!
//! A backend that leaves the set is diverted at once: the batches in its queue, and any that
//! fail an attempt from then on, are routed again over the new ring (split again, since its
//! traces now have several owners) and queued with their new owners. Its exporter is then shut
//! down after its attempts in flight have had their `timeout`; only what is still unsettled
//! then is counted as dropped (`reason="shutdown"`). The Collector drops a leaving backend's
//! queue with it (contrib #35378, #36717).
//!
//! A backend that keeps failing is taken out of the ring for a cool-down (the rule is in
//! [`backend`]) and diverted the same way, so its traces go to the next owner on the ring
//! instead of waiting out its retries or being dropped (#31209). Only when every backend is out
//! does data stay with its owner, retrying there. Failures are counted per backend and per
//! batch part: one failing backend fails only what was routed to it (#45015).
//!
//! # Counting
//!
//! The backends report to the balancer's observer, so `otelcol_exporter_sent_spans` and
//! `_send_failed_spans` of the `loadbalancing/NAME` exporter count what reached, or was lost
//! for, any backend; a batch part routed again is counted once, where it ends. Each attempt is
//! an outcome (`otelcol_loadbalancer_backend_outcome{endpoint,success}`) and a latency
//! (`otelcol_loadbalancer_backend_latency{endpoint}`, ms) — per attempt as it happened, where
//! the Collector times the hand-over to a backend's queue.

mod backend;
mod ring;
mod route;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use glommio::sync::{Gate, Semaphore};
use glommio::task::JoinHandle;

use backend::{Backend, BackendObserver, Health};
use ring::Ring;
use route::Router;
pub use route::Routing;

use super::batch::Batch;
use super::exporter::{Exporter, Handback, SubmitError};
use super::otlp_grpc::GrpcClient;
use super::resolve;
use super::retry::Xorshift;
use super::settings::{
    validate_timeout, Backends, LoadBalancingSettings, OtlpGrpcSettings, SettingsError,
};
use super::{reason, ExportObserver};

/// How long after its attempts' `timeout` a leaving backend's exporter is shut down: its
/// batches in flight have ended (and, diverted, been routed again) by then.
const LEAVE_MARGIN: Duration = Duration::from_secs(1);

/// A task shutting down a backend that left, and whether it finished.
type Leaving = (Rc<Cell<bool>>, JoinHandle<()>);

/// A `loadbalancing` exporter on one shard.
pub(crate) struct LoadBalancer {
    shared: Rc<Shared>,
}

/// The balancer's state, shared with its backends' observers and handbacks (weakly) and with
/// its resolver and re-routing tasks.
pub(super) struct Shared {
    name: String,
    shard: usize,
    settings: LoadBalancingSettings,
    observer: Rc<dyn ExportObserver>,
    state: RefCell<State>,
    /// Entered by each task that routes a handed-back batch again; shutdown waits for them.
    rerouting: Gate,
    /// Never has units; closed once there is a backend (or at shutdown), waking submitters
    /// that wait for the first one.
    first_backends: Semaphore,
    closing: Cell<bool>,
    /// Batches in the backends' queues together.
    queued: Cell<usize>,
    /// The tasks shutting down backends that left, each with whether it finished.
    leaving: RefCell<Vec<Leaving>>,
    resolver: RefCell<Option<JoinHandle<()>>>,
}

struct State {
    /// Sorted by endpoint: a backend's index here is its index on the ring.
    backends: Vec<Rc<Backend>>,
    ring: Ring,
    router: Router,
    /// The index in `backends` of this node, for the tier (`LoadBalancingSettings::local`).
    local: Option<usize>,
    /// Counts the backend sets: indexes into `backends` hold within one generation.
    generation: u64,
}

impl LoadBalancer {
    /// Builds the balancer `name` for shard `shard`, with its backends (static) or its resolver
    /// task (DNS). Must run on the shard's executor.
    pub(crate) fn new(
        name: &str,
        shard: usize,
        settings: LoadBalancingSettings,
        observer: Rc<dyn ExportObserver>,
    ) -> Result<LoadBalancer, SettingsError> {
        LoadBalancer::check(&settings)?;
        let shared = Rc::new(Shared {
            name: name.to_string(),
            shard,
            state: RefCell::new(State {
                backends: Vec::new(),
                ring: Ring::default(),
                router: Router::new(settings.routing, Xorshift::seeded(shard, name)),
                local: None,
                generation: 0,
            }),
            settings,
            observer,
            rerouting: Gate::new(),
            first_backends: Semaphore::new(0),
            closing: Cell::new(false),
            queued: Cell::new(0),
            leaving: RefCell::new(Vec::new()),
            resolver: RefCell::new(None),
        });
        match &shared.settings.backends {
            Backends::Static(list) => {
                shared.observer.resolution(true);
                shared.set_backends(list.clone());
            }
            Backends::Dns {
                hostname,
                port,
                interval,
                timeout,
            } => {
                let task = glommio::spawn_local(follow_dns(
                    Rc::downgrade(&shared),
                    hostname.clone(),
                    *port,
                    *interval,
                    *timeout,
                ))
                .detach();
                *shared.resolver.borrow_mut() = Some(task);
            }
        }
        Ok(LoadBalancer { shared })
    }

    /// Checks `settings` as [`LoadBalancer::new`] would, starting nothing.
    pub(crate) fn check(settings: &LoadBalancingSettings) -> Result<(), SettingsError> {
        validate_timeout(settings.otlp.timeout)?;
        settings.otlp.queue.validate()?;
        match &settings.backends {
            Backends::Static(list) if list.is_empty() => return Err(SettingsError::NoBackends),
            Backends::Static(list) => {
                for endpoint in list {
                    GrpcClient::new(&backend_settings(&settings.otlp, endpoint))?;
                }
            }
            Backends::Dns { hostname, port, .. } => {
                GrpcClient::new(&backend_settings(
                    &settings.otlp,
                    &format!("{hostname}:{port}"),
                ))?;
            }
        }
        Ok(())
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.name
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.shared.queued.get()
    }

    /// Each backend's queue bound.
    pub(crate) fn queue_capacity(&self) -> usize {
        let queue = &self.shared.settings.otlp.queue;
        if queue.enabled {
            queue.queue_size
        } else {
            0
        }
    }

    /// Calls `f` with the owner of each trace as the ring stands (the tier's view): a function
    /// giving, for a trace id, `None` when this node (the tier's local member,
    /// `LoadBalancingSettings::local`) owns it and otherwise the owning member's index, with
    /// the backends taken out skipped as [`LoadBalancer::submit`] routes; and the number of
    /// members. Before the first membership every trace is this node's (it decides rather than
    /// waits); a node that is not a member owns none. Returns `f`'s result and the membership's
    /// generation, for [`LoadBalancer::submit_to`].
    pub(crate) fn with_owners<R>(
        &self,
        f: impl FnOnce(&dyn Fn(&[u8]) -> Option<usize>, usize) -> R,
    ) -> (R, u64) {
        let state = self.shared.state.borrow();
        let generation = state.generation;
        if state.backends.is_empty() {
            return (f(&|_| None, 0), generation);
        }
        let now = Instant::now();
        let usable: Vec<bool> = state
            .backends
            .iter()
            .map(|b| b.health.usable(now))
            .collect();
        let (ring, local) = (&state.ring, state.local);
        let owner = |trace_id: &[u8]| {
            let owner = ring.owner(ring::key_of(trace_id), |b| usable[b]);
            owner.filter(|&b| Some(b) != local)
        };
        (f(&owner, state.backends.len()), generation)
    }

    /// Hands `batch`, all of whose traces member `member` of membership `generation` owns (see
    /// [`LoadBalancer::with_owners`]), to that member's exporter; routes it again if the
    /// membership has changed since. Waits while the member's queue is full.
    pub(crate) async fn submit_to(
        &self,
        member: usize,
        generation: u64,
        batch: Batch,
    ) -> Result<(), SubmitError> {
        let backend = {
            let state = self.shared.state.borrow();
            (state.generation == generation && !self.shared.closing.get())
                .then(|| state.backends.get(member).cloned())
                .flatten()
        };
        match backend {
            // A refusal means shutdown has begun; the backend counted the part.
            Some(backend) => backend.exporter.submit_direct(batch).await,
            None => self.shared.deliver(batch).await,
        }
    }

    /// Whether this node is a member of the current set (always false for an exporter).
    pub(crate) fn is_member(&self) -> bool {
        self.shared.state.borrow().local.is_some()
    }

    /// Routes `batch` and hands each part to its backend, waiting while a backend's queue is
    /// full, or while there is no backend yet.
    pub(crate) async fn submit(&self, batch: Batch) -> Result<(), SubmitError> {
        self.shared.deliver(batch).await
    }

    /// Stops following the resolver, waits (until `deadline`) for batches being routed again,
    /// routes `final_batches` and shuts every backend down with its share of them.
    pub(crate) async fn shutdown(&self, final_batches: Vec<Batch>, deadline: Instant) {
        let shared = &self.shared;
        if shared.closing.get() {
            return;
        }
        if let Some(task) = shared.resolver.borrow_mut().take() {
            task.cancel();
        }
        let rerouting = shared.rerouting.close();
        let left = deadline.saturating_duration_since(Instant::now());
        if glommio::timer::timeout(left, async {
            let _ = rerouting.await;
            Ok(())
        })
        .await
        .is_err()
        {
            tracing::warn!(
                exporter = %shared.name,
                "batches being routed again were still waiting for room at the shutdown deadline"
            );
        }
        shared.closing.set(true);
        shared.first_backends.close();
        let backends = shared.state.borrow().backends.clone();
        let mut finals: Vec<Vec<Batch>> = vec![Vec::new(); backends.len()];
        for batch in final_batches {
            match shared.route(&batch) {
                Some(parts) => {
                    for (backend, part) in parts {
                        finals[backend].push(part);
                    }
                }
                None => shared
                    .observer
                    .send_failed(batch.signal, batch.items, reason::SHUTDOWN),
            }
        }
        for (backend, finals) in backends.iter().zip(finals) {
            backend.exporter.shutdown_direct(finals, deadline).await;
        }
        let leaving: Vec<_> = shared.leaving.borrow_mut().drain(..).collect();
        for (_, task) in leaving {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = glommio::timer::timeout(left, async {
                task.await;
                Ok(())
            })
            .await;
        }
    }
}

impl Shared {
    /// Routes `batch` and submits its parts; see [`LoadBalancer::submit`].
    async fn deliver(self: &Rc<Self>, batch: Batch) -> Result<(), SubmitError> {
        loop {
            if self.closing.get() {
                self.observer
                    .send_failed(batch.signal, batch.items, reason::NOT_QUEUED);
                return Err(SubmitError::ShutDown);
            }
            let Some(parts) = self.route(&batch) else {
                // No backend yet (a DNS name not resolved so far). The semaphore is closed once
                // there is one — the set never empties again — or at shutdown, after `closing`
                // is set; so this waits, and never spins.
                let _ = self.first_backends.acquire(1).await;
                debug_assert!(self.closing.get() || !self.state.borrow().backends.is_empty());
                continue;
            };
            let backends = self.state.borrow().backends.clone();
            for (backend, part) in parts {
                // A refusal means shutdown has begun; the backend counted the part.
                let _ = backends[backend].exporter.submit_direct(part).await;
            }
            return Ok(());
        }
    }

    /// `batch` split by owner, each part with its backend's index; `None` without backends.
    /// Parts that cannot be routed are counted as failed here.
    fn route(&self, batch: &Batch) -> Option<Vec<(usize, Batch)>> {
        let mut state = self.state.borrow_mut();
        let State {
            backends,
            ring,
            router,
            ..
        } = &mut *state;
        if backends.is_empty() {
            return None;
        }
        let now = Instant::now();
        let usable: Vec<bool> = backends.iter().map(|b| b.health.usable(now)).collect();
        let any_usable = usable.iter().any(|&u| u);
        // Diverted while out, and only while another backend can take its keys.
        for (backend, &usable) in backends.iter().zip(&usable) {
            let divert = !usable && any_usable;
            if backend.exporter.is_diverted() != divert {
                backend.exporter.divert(divert);
            }
        }
        let count = backends.len();
        let routed = router.route(batch, count, |key| {
            ring.owner(key, |b| usable[b])
                .expect("a ring with backends has an owner for every key")
        });
        match routed {
            Ok((parts, unrouted)) => {
                if unrouted > 0 {
                    self.observer
                        .send_failed(batch.signal, unrouted, reason::PERMANENT);
                }
                Some(parts)
            }
            Err(err) => {
                tracing::error!(exporter = %self.name, error = %err, "a batch could not be routed");
                self.observer
                    .send_failed(batch.signal, batch.items, reason::PERMANENT);
                Some(Vec::new())
            }
        }
    }

    /// A backend was taken out: route its queue again now, if another can take it.
    fn taken_out(self: &Rc<Self>) {
        let now = Instant::now();
        let backends = self.state.borrow().backends.clone();
        if !backends.iter().any(|b| b.health.usable(now)) {
            return;
        }
        for backend in backends.iter().filter(|b| !b.health.usable(now)) {
            backend.exporter.divert(true);
        }
    }

    /// Takes `batch` back from a diverted backend and routes it again, in a task of its own.
    fn reroute(self: &Rc<Self>, batch: Batch) {
        let Ok(pass) = self.rerouting.enter() else {
            // Shutdown has begun waiting for the re-routing; what comes now is lost to it.
            self.observer
                .send_failed(batch.signal, batch.items, reason::SHUTDOWN);
            return;
        };
        let shared = self.clone();
        glommio::spawn_local(async move {
            let _ = shared.deliver(batch).await;
            drop(pass);
        })
        .detach();
    }

    fn queued_changed(&self, before: usize, now: usize) {
        let total = (self.queued.get() + now).saturating_sub(before);
        self.queued.set(total);
        self.observer.queue_len(total);
    }

    /// Makes `endpoints` the backend set: new ones get an exporter, those gone are diverted
    /// and shut down once their attempts in flight are over.
    fn set_backends(self: &Rc<Self>, mut endpoints: Vec<String>) {
        endpoints.sort();
        endpoints.dedup();
        let (kept, gone): (Vec<_>, Vec<_>) = self
            .state
            .borrow()
            .backends
            .iter()
            .cloned()
            .partition(|b| endpoints.binary_search(&b.endpoint).is_ok());
        let changed = !gone.is_empty() || kept.len() != endpoints.len();
        let mut backends = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            if let Some(backend) = kept.iter().find(|b| &b.endpoint == endpoint) {
                backends.push(backend.clone());
                continue;
            }
            match self.backend(endpoint) {
                Ok(backend) => backends.push(Rc::new(backend)),
                Err(err) => tracing::error!(
                    exporter = %self.name,
                    backend = %endpoint,
                    error = %err,
                    "cannot build an exporter for a backend; left out of the ring"
                ),
            }
        }
        if backends.is_empty() && !self.state.borrow().backends.is_empty() {
            // Every new backend failed to build (logged above): routing to none would stall
            // the pipeline, so the last set stays.
            return;
        }
        if changed {
            tracing::info!(
                exporter = %self.name,
                shard = self.shard,
                backends = ?endpoints,
                "load balancer backends"
            );
        }
        let local = self.settings.local.as_ref().and_then(|local| {
            let mine: Vec<usize> = (0..backends.len())
                .filter(|&b| local.is(&backends[b].endpoint))
                .collect();
            if mine.len() > 1 {
                tracing::error!(
                    exporter = %self.name,
                    members = ?mine.iter().map(|&b| &backends[b].endpoint).collect::<Vec<_>>(),
                    "several members are this node; the first is taken (set tier.self)"
                );
            }
            mine.first().copied()
        });
        {
            let mut state = self.state.borrow_mut();
            state.local = local;
            state.generation += 1;
            state.ring = Ring::new(
                &backends
                    .iter()
                    .map(|b| b.endpoint.as_str())
                    .collect::<Vec<_>>(),
            );
            state.backends = backends;
        }
        self.observer
            .backends(self.state.borrow().backends.len(), changed);
        if !self.state.borrow().backends.is_empty() {
            self.first_backends.close();
        }
        for backend in gone {
            self.leave(backend);
        }
    }

    /// A backend left the set: what it holds goes to the new owners; its exporter ends once
    /// its attempts in flight have had their time.
    fn leave(self: &Rc<Self>, backend: Rc<Backend>) {
        backend.exporter.divert(true);
        let wait = self.settings.otlp.timeout + LEAVE_MARGIN;
        let done = Rc::new(Cell::new(false));
        let finished = done.clone();
        let task = glommio::spawn_local(async move {
            glommio::timer::sleep(wait).await;
            backend
                .exporter
                .shutdown_direct(Vec::new(), Instant::now() + LEAVE_MARGIN)
                .await;
            finished.set(true);
        })
        .detach();
        let mut leaving = self.leaving.borrow_mut();
        leaving.retain(|(done, _)| !done.get());
        leaving.push((done, task));
    }

    fn backend(self: &Rc<Self>, endpoint: &str) -> Result<Backend, SettingsError> {
        let health = Rc::new(Health::default());
        let observer = Rc::new(BackendObserver {
            endpoint: endpoint.to_string(),
            parent: self.observer.clone(),
            health: health.clone(),
            balancer: Rc::downgrade(self),
        });
        let weak: Weak<Shared> = Rc::downgrade(self);
        let observer_for_drops = self.observer.clone();
        let handback: Handback = Rc::new(move |batch: Batch| match weak.upgrade() {
            Some(shared) => shared.reroute(batch),
            None => observer_for_drops.send_failed(batch.signal, batch.items, reason::SHUTDOWN),
        });
        let exporter = Exporter::backend(
            &self.name,
            self.shard,
            backend_settings(&self.settings.otlp, endpoint),
            observer,
            handback,
        )?;
        Ok(Backend {
            endpoint: endpoint.to_string(),
            exporter,
            health,
        })
    }
}

/// `template` with `endpoint`: a backend's `otlp` settings.
fn backend_settings(template: &OtlpGrpcSettings, endpoint: &str) -> OtlpGrpcSettings {
    OtlpGrpcSettings {
        endpoint: endpoint.to_string(),
        ..template.clone()
    }
}

/// The DNS resolver's task: looks `hostname` up every `interval`, off the shard's thread, and
/// makes each answer the backend set. Ends when the balancer is gone or cancels it.
async fn follow_dns(
    balancer: Weak<Shared>,
    hostname: String,
    port: u16,
    interval: Duration,
    timeout: Duration,
) {
    loop {
        let answer = resolve::lookup(&hostname, port, timeout).await;
        let Some(shared) = balancer.upgrade() else {
            return;
        };
        if shared.closing.get() {
            return;
        }
        match answer {
            Ok(addresses) => {
                shared.observer.resolution(true);
                let endpoints = addresses.iter().map(ToString::to_string).collect();
                shared.set_backends(endpoints);
            }
            Err(err) => {
                shared.observer.resolution(false);
                tracing::warn!(
                    exporter = %shared.name,
                    hostname = %hostname,
                    error = %err,
                    "resolving the load balancer's backends failed; the last set stays in use"
                );
            }
        }
        drop(shared);
        glommio::timer::sleep(interval).await;
    }
}
