//! A small authoritative DNS server on a loopback UDP port (wire format by
//! hickory-proto), for discovery tests: the adapters', the scenarios' and
//! the `asp` CLI's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::rr::{RData, Record};
use tokio::net::UdpSocket;

/// What the server answers for one name.
#[derive(Clone, Debug)]
pub enum Answer {
    /// TXT records (each a list of strings) with a TTL.
    Txt(Vec<Vec<&'static str>>, u32),
    /// The same, answered with the AD bit set, as a validating resolver
    /// answers a DNSSEC-signed zone.
    Validated(Vec<Vec<&'static str>>, u32),
    /// The same, after a delay.
    Slow(Duration, Vec<Vec<&'static str>>),
    /// An address (A record), for hosts the tests connect to.
    Addr(std::net::Ipv4Addr),
}

/// A running test DNS server.
#[derive(Debug)]
pub struct Dns {
    /// Its address.
    pub addr: SocketAddr,
    /// Queries it has answered.
    pub queries: Arc<AtomicUsize>,
}

/// Serves `zone` (lowercase FQDNs); unknown names are NXDOMAIN.
pub async fn dns(zone: HashMap<&'static str, Answer>) -> Dns {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let queries: Arc<AtomicUsize> = Arc::default();
    let counter = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            response.metadata.authoritative = true;
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.queries = request.queries.clone();
            let query = &request.queries[0];
            let name = query.name().to_ascii().to_ascii_lowercase();
            if let Some(Answer::Addr(ip)) = zone.get(name.as_str()) {
                let a = hickory_resolver::proto::rr::rdata::A(*ip);
                response.add_answer(Record::from_rdata(query.name().clone(), 60, RData::A(a)));
                let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
                continue;
            }
            let (delay, records) = match zone.get(name.as_str()) {
                Some(Answer::Txt(records, ttl)) => (Duration::ZERO, Some((records.clone(), *ttl))),
                Some(Answer::Validated(records, ttl)) => {
                    response.metadata.authentic_data = true;
                    (Duration::ZERO, Some((records.clone(), *ttl)))
                }
                Some(Answer::Slow(delay, records)) => (*delay, Some((records.clone(), 60))),
                Some(Answer::Addr(_)) => unreachable!("answered above"),
                None => (Duration::ZERO, None),
            };
            match records {
                Some((records, ttl)) => {
                    for strings in records {
                        let txt = TXT::new(strings.iter().map(|s| s.to_string()).collect());
                        response.add_answer(Record::from_rdata(query.name().clone(), ttl, RData::TXT(txt)));
                    }
                }
                None => response.metadata.response_code = ResponseCode::NXDomain,
            }
            let bytes = response.to_vec().unwrap();
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = socket.send_to(&bytes, peer).await;
            });
        }
    });
    Dns { addr, queries }
}
