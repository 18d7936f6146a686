//! Opening a connection to an upstream, on the shard's io_uring: TCP, then TLS when the
//! exporter is configured for it.
//!
//! The addresses come from the target's resolver (`super::resolve`): resolved off the shard's
//! thread, each connection starting at the next address in turn and trying the others after
//! it, so a name with an unreachable IPv6 address and a reachable IPv4 one still connects, and
//! a name with several upstreams spreads connections over them.

use std::io;

use glommio::net::TcpStream;

use super::error::SendError;
use super::proxy::tunnel;
use super::resolve::Resolver;
use super::settings::Target;
use crate::tls::{failure_reason, Conn};

/// Connects to `target` (each of its addresses in turn), and sets up TLS when it has TLS.
///
/// A failed TLS handshake is a [`SendError::Tls`], retryable like any failure to connect; it
/// is logged once when TLS to the target starts failing or fails differently, and once when it
/// works again, not on every attempt.
pub(crate) async fn connect(target: &Target) -> Result<Conn, SendError> {
    let stream = connect_tcp(target).await?;
    let Some(tls) = &target.tls else {
        return Ok(Conn::Plain(stream));
    };
    let name = tls
        .server_name(&target.host)
        .map_err(|source| SendError::Connect {
            endpoint: target.authority.clone(),
            source,
        })?;
    let connector = futures_rustls::TlsConnector::from(tls.config());
    match connector.connect(name, stream).await {
        Ok(session) => {
            tls.handshake_succeeded(&target.authority);
            Ok(Conn::Client(Box::new(session)))
        }
        Err(source) => {
            let reason = failure_reason(&source);
            tls.handshake_failed(&target.authority, reason, &source);
            Err(SendError::Tls {
                endpoint: target.authority.clone(),
                reason,
                source,
            })
        }
    }
}

/// Connects to `target` over TCP, trying each of its addresses; or, with a proxy, to the proxy
/// (each of its addresses), and through it to the target's host and port.
async fn connect_tcp(target: &Target) -> Result<TcpStream, SendError> {
    let failed = |source| SendError::Connect {
        endpoint: target.authority.clone(),
        source,
    };
    let Some((proxy, proxy_resolver)) = &target.proxy else {
        return connect_any(&target.resolver).await.map_err(failed);
    };
    let mut stream = connect_any(proxy_resolver).await.map_err(|e| {
        failed(std::io::Error::new(
            e.kind(),
            format!("proxy {}: {e}", proxy.shown()),
        ))
    })?;
    tunnel(
        &mut stream,
        proxy,
        target.resolver.host(),
        target.resolver.port(),
    )
    .await
    .map_err(failed)?;
    Ok(stream)
}

/// Connects to one of `resolver`'s addresses, in its order.
async fn connect_any(resolver: &Resolver) -> io::Result<TcpStream> {
    let addrs = resolver.addresses().await?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are written whole and waited on; Nagle would only delay the tail.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => last = err.into(),
        }
    }
    // None answered: the name may point elsewhere now.
    resolver.all_failed();
    Err(last)
}
