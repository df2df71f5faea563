//! Byte streams for ASP over stdio (SPEC.md §2): this process's stdin and
//! stdout (an agent run as a child process), or a child's pipes (the
//! client that starts it).

use tokio::io::{Join, Stdin, Stdout};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// This process's stdin and stdout as one stream, for
/// [`Service::serve_stream`](crate::Service::serve_stream). Nothing else
/// may write to stdout then: log to stderr.
pub fn stdio() -> Compat<Join<Stdin, Stdout>> {
    tokio::io::join(tokio::io::stdin(), tokio::io::stdout()).compat()
}

/// A child's stdout (read) and stdin (write) as one stream, for
/// [`ClientBuilder::connect_stream`](crate::ClientBuilder::connect_stream);
/// `None` unless both were piped (`Stdio::piped()`).
pub fn child_stdio(child: &mut Child) -> Option<Compat<Join<ChildStdout, ChildStdin>>> {
    let (stdout, stdin) = (child.stdout.take()?, child.stdin.take()?);
    Some(tokio::io::join(stdout, stdin).compat())
}
