//! `asp_driver::tls::TlsServerStream`, the server-side TLS stream on
//! rustls's unbuffered API, against tokio-rustls clients on loopback: data
//! of every size both ways, close_notify and its absence, key updates, bad
//! clients, and no buffer held while idle.

use std::sync::Arc;
use std::time::Duration;

use asp_tokio::tls::TlsServerStream;
use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

type Server = TlsServerStream<Compat<TcpStream>>;

struct Fixture {
    listener: TcpListener,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

async fn fixture() -> Fixture {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let server =
        asp_tokio::tls::server_config_from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes())
            .unwrap();
    let client = asp_tokio::tls::client_config(Some(cert.cert.pem().as_bytes())).unwrap();
    Fixture { listener: TcpListener::bind("127.0.0.1:0").await.unwrap(), server, client }
}

impl Fixture {
    async fn tcp(&self) -> (TcpStream, TcpStream) {
        let (client, accepted) =
            tokio::join!(TcpStream::connect(self.listener.local_addr().unwrap()), self.listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    /// A handshaken pair: our server stream and a tokio-rustls client.
    async fn pair(&self) -> (Server, tokio_rustls::client::TlsStream<TcpStream>) {
        let (client, server) = self.tcp().await;
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            TlsServerStream::accept(server.compat(), self.server.clone()),
            connector.connect(name, client)
        );
        (server.unwrap(), client.unwrap())
    }
}

/// Echoes until end of file, reading `chunk` bytes at a time; then closes
/// (close_notify). Returns the bytes echoed.
async fn echo(mut server: Server, chunk: usize) -> std::io::Result<usize> {
    let mut buf = vec![0u8; chunk];
    let mut total = 0;
    loop {
        let n = server.read(&mut buf).await?;
        if n == 0 {
            server.close().await?;
            return Ok(total);
        }
        server.write_all(&buf[..n]).await?;
        server.flush().await?;
        total += n;
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test]
async fn data_of_every_size_goes_both_ways_and_close_notify_ends_it_cleanly() {
    let fixture = fixture().await;
    for chunk in [1, 1000, 64 * 1024] {
        let (server, client) = fixture.pair().await;
        let echoed = tokio::spawn(echo(server, chunk));
        let (mut rx, mut tx) = tokio::io::split(client);
        let sizes = [1, 100, 16 * 1024, 16 * 1024 + 1, 100_000, 1_000_000];
        let sent: Vec<u8> = sizes.iter().flat_map(|&n| pattern(n)).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(70_000) {
                tx.write_all(piece).await.unwrap();
            }
            tx.shutdown().await.unwrap(); // close_notify, then FIN
        });
        let mut got = Vec::new();
        // The client's read ends cleanly: the server sent close_notify.
        timeout(Duration::from_secs(30), rx.read_to_end(&mut got)).await.unwrap().unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), expected.len(), "reading {chunk} at a time");
        assert!(got == expected, "the echo differs, reading {chunk} at a time");
        assert_eq!(echoed.await.unwrap().unwrap(), expected.len());
    }
}

#[tokio::test]
async fn an_idle_connection_holds_no_buffer() {
    let fixture = fixture().await;
    let (mut server, mut client) = fixture.pair().await;
    let mut buf = [0u8; 64];
    // Waiting for the first byte after the handshake.
    assert!(futures::poll!(server.read(&mut buf)).is_pending());
    assert_eq!(server.buffered_capacity(), 0);
    for round in 0..3 {
        client.write_all(&pattern(40_000)).await.unwrap();
        client.flush().await.unwrap();
        let mut got = 0;
        while got < 40_000 {
            got += timeout(Duration::from_secs(10), server.read(&mut buf)).await.unwrap().unwrap();
        }
        server.write_all(&pattern(50_000)).await.unwrap();
        server.flush().await.unwrap();
        let mut back = vec![0u8; 50_000];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, pattern(50_000));
        assert!(futures::poll!(server.read(&mut buf)).is_pending());
        assert_eq!(server.buffered_capacity(), 0, "after round {round}");
    }
}

#[tokio::test]
async fn key_updates_from_the_client_are_followed() {
    let fixture = fixture().await;
    let (server, mut client) = fixture.pair().await;
    let echoed = tokio::spawn(echo(server, 4096));
    for round in 0..5 {
        client.get_mut().1.refresh_traffic_keys().unwrap();
        let sent = pattern(30_000 + round);
        client.write_all(&sent).await.unwrap();
        client.flush().await.unwrap();
        let mut back = vec![0u8; sent.len()];
        timeout(Duration::from_secs(10), client.read_exact(&mut back)).await.unwrap().unwrap();
        assert_eq!(back, sent, "round {round}");
    }
    client.shutdown().await.unwrap();
    assert_eq!(echoed.await.unwrap().unwrap(), (0..5).map(|r| 30_000 + r).sum::<usize>());
}

#[tokio::test]
async fn a_socket_closed_without_close_notify_is_an_unexpected_eof() {
    let fixture = fixture().await;
    let (mut server, mut client) = fixture.pair().await;
    client.write_all(b"last words").await.unwrap();
    client.flush().await.unwrap();
    client.get_mut().0.shutdown().await.unwrap(); // FIN, no close_notify
    let mut got = Vec::new();
    let error = timeout(Duration::from_secs(10), server.read_to_end(&mut got)).await.unwrap().unwrap_err();
    assert_eq!(got, b"last words");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    assert!(error.to_string().contains("close_notify"), "{error}");
}

#[tokio::test]
async fn a_client_that_distrusts_the_certificate_fails_the_handshake_on_both_sides() {
    let fixture = fixture().await;
    let (client, server) = fixture.tcp().await;
    let stranger = fixture_client_trusting_nothing();
    let connector = tokio_rustls::TlsConnector::from(stranger);
    let (server, client) = tokio::join!(
        TlsServerStream::accept(server.compat(), fixture.server.clone()),
        connector.connect(ServerName::try_from("localhost").unwrap(), client)
    );
    let client_error = client.unwrap_err().to_string();
    assert!(client_error.contains("invalid peer certificate"), "{client_error}");
    let server_error = server.unwrap_err().to_string();
    assert!(server_error.contains("alert"), "the server names the client's alert: {server_error}");
}

fn fixture_client_trusting_nothing() -> Arc<rustls::ClientConfig> {
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    asp_tokio::tls::client_config(Some(other.cert.pem().as_bytes())).unwrap()
}

#[tokio::test]
async fn bad_clients_get_an_error_and_an_alert_not_a_hang() {
    let fixture = fixture().await;
    // Plain HTTP where TLS is expected; a record header declaring 64 KiB of
    // handshake; a ClientHello cut short by the client leaving.
    let cases: [(&[u8], bool, std::io::ErrorKind); 3] = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, std::io::ErrorKind::InvalidData),
        (&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01], false, std::io::ErrorKind::InvalidData),
        (&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03], true, std::io::ErrorKind::UnexpectedEof),
    ];
    for (bytes, leave, kind) in cases {
        let (mut client, server) = fixture.tcp().await;
        client.write_all(bytes).await.unwrap();
        if leave {
            client.shutdown().await.unwrap();
        }
        let accepted =
            timeout(Duration::from_secs(10), TlsServerStream::accept(server.compat(), fixture.server.clone())).await;
        let error = accepted.expect("the server gives up at once").unwrap_err();
        assert_eq!(error.kind(), kind, "{bytes:?}: {error}");
        if !leave {
            // rustls's alert reached the client: a TLS alert record.
            let mut answer = [0u8; 1];
            let read = timeout(Duration::from_secs(10), client.read(&mut answer)).await.unwrap().unwrap();
            assert_eq!((read, answer[0]), (1, 0x15), "{bytes:?}: an alert record");
        }
    }
}

#[tokio::test]
async fn a_forged_record_fails_the_stream_for_good_with_one_alert() {
    let fixture = fixture().await;
    let (mut server, mut client) = fixture.pair().await;
    // An application-data record the client's keys never sealed.
    client.get_mut().0.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).await.unwrap();
    client.get_mut().0.write_all(&[0xab; 0x20]).await.unwrap();
    let mut buf = [0u8; 64];
    let first = timeout(Duration::from_secs(10), server.read(&mut buf)).await.unwrap().unwrap_err();
    assert_eq!(first.kind(), std::io::ErrorKind::InvalidData, "{first}");
    assert!(first.to_string().contains("decrypt"), "{first}");
    // Later calls give the same error; rustls is not asked again.
    let again = server.read(&mut buf).await.unwrap_err();
    assert_eq!((again.kind(), again.to_string()), (first.kind(), first.to_string()));
    let write = server.write(b"more").await.unwrap_err();
    assert_eq!(write.to_string(), first.to_string());
    // The client hears bad_record_mac, once.
    let mut heard = Vec::new();
    let read = timeout(Duration::from_secs(10), client.read_to_end(&mut heard)).await.unwrap();
    let error = read.unwrap_err().to_string();
    assert!(error.contains("BadRecordMac"), "{error}");
}
