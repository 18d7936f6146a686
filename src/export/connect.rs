//! Opening a TCP connection to an upstream, on the shard's io_uring.
//!
//! Name resolution uses the system resolver (`getaddrinfo`), which blocks the shard's thread.
//! It runs only when a connection is (re)made, a cold path; endpoints given as IP addresses
//! never touch the resolver. Each resolved address is tried in order, so a name with an
//! unreachable IPv6 address and a reachable IPv4 one still connects.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use glommio::net::TcpStream;

use super::error::SendError;
use super::settings::Target;

/// Connects to `target`, trying each of its addresses.
pub(crate) async fn connect(target: &Target) -> Result<TcpStream, SendError> {
    let failed = |source| SendError::Connect {
        endpoint: target.authority.clone(),
        source,
    };
    let addrs: Vec<SocketAddr> = match target.host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(failed)?
            .collect(),
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are written whole and waited on; Nagle would only delay the tail.
                stream.set_nodelay(true).map_err(|e| failed(e.into()))?;
                return Ok(stream);
            }
            Err(err) => last = err.into(),
        }
    }
    Err(failed(last))
}
