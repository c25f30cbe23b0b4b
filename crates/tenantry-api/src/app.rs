//! A built server: bound, serving until stopped, with its background work.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;

use tenantry_core::Clock;

use crate::{AppState, build_state_with_clock, config::Config, router, schedule, server};

/// Background tasks that end with the server, however it ends.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A built server, bound and ready to accept connections.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// [`Application::build`] on `clock` (see [`build_state_with_clock`]).
    pub async fn build_with_clock(mut config: Config, clock: Clock) -> anyhow::Result<Self> {
        let bind = config.bind;
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        // With port 0 the system picked one: links built from the listening address
        // (`effective_public_url`) must name it.
        config.bind = listener.local_addr().context("the bound address")?;
        let state = build_state_with_clock(config, clock).await?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (bounded by `http.shutdown_grace_secs`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.http.shutdown_grace_secs);
        let settings = server::ServeSettings {
            header_read_timeout: Duration::from_secs(
                self.state.config.http.header_read_timeout_secs.max(1),
            ),
            max_connections_per_ip: self.state.config.http.max_connections_per_ip,
        };
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // Periodic work (mail delivery, pruning, purges, sweeps) stops with the server.
        let periodic = schedule(&self.state).spawn(stopped(stopping.clone()));
        // Signing-key rotations made elsewhere (CLI, other nodes) arrive without a restart.
        let keys = tokio::spawn(self.state.identity.refresh_keys_forever());
        // Best effort: an external issuer that is down does not delay or fail the start.
        let identity = self.state.identity.clone();
        let oidc_prefetch = tokio::spawn(async move { identity.prefetch_external_keys().await });
        let app = router(self.state);
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
            let _ = stopped_tx.send(());
        };
        let _background = AbortOnDrop(vec![periodic, keys, oidc_prefetch]);
        let server = tokio::spawn(server::serve(self.listener, app, settings, signal));
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.context("server task"),
            _ = stopped_rx => {}
        }
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result.context("server task"),
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "in-flight requests did not finish in time"
                );
                Ok(())
            }
        }
    }
}
