//! A loopback TCP proxy for the scenarios that lose networks.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A loopback TCP proxy on plain threads (so it runs beside any runtime);
/// `cut` shuts every connection through it down; `retarget` sends new
/// connections elsewhere (a load balancer after a node died); `freeze`
/// stops forwarding bytes (a network that went silent).
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    upstream: Arc<Mutex<SocketAddr>>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    /// A proxy to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let upstream = Arc::new(Mutex::new(upstream));
        let frozen: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (registry, counter, target, ice) = (links.clone(), accepted.clone(), upstream.clone(), frozen.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let to = *target.lock().unwrap();
                let Ok(outbound) = TcpStream::connect(to) else { continue };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    let ice = ice.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            while ice.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    })
                };
                pipe(inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                pipe(outbound.try_clone().unwrap(), inbound.try_clone().unwrap());
                registry.lock().unwrap().extend([inbound, outbound]);
            }
        });
        Proxy { addr, links, accepted, upstream, frozen }
    }

    /// Stops (`true`) or resumes forwarding bytes on every connection;
    /// `cut` still works while frozen.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }

    /// New connections go to `upstream` from now on.
    pub fn retarget(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// Cuts every open connection; returns how many sockets it shut.
    pub fn cut(&self) -> usize {
        let links: Vec<_> = self.links.lock().unwrap().drain(..).collect();
        for link in &links {
            let _ = link.shutdown(std::net::Shutdown::Both);
        }
        links.len()
    }
}
