//! Who is on the other end: what the server's auth hook decided about a
//! client, handed to every tool the client invokes.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use asp_proto::{ErrorInfo, HelloInfo};

use crate::BoxFuture;

/// The client a server's tool runs for: its token and name from HELLO (or
/// the upgrade's `Authorization`), and the identity the auth hook returned
/// ([`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)).
/// On a client, the server's side of a call it makes to our tools: empty.
#[derive(Clone, Default)]
pub struct Caller {
    token: Option<String>,
    name: Option<String>,
    identity: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say whether there is one, not what it is.
        f.debug_struct("Caller")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("name", &self.name)
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl Caller {
    pub(crate) fn new(hello: &HelloInfo, identity: Option<Arc<dyn Any + Send + Sync>>) -> Caller {
        Caller { token: hello.token.clone(), name: hello.name.clone(), identity }
    }

    /// The bearer token the client presented.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The name the client gave in HELLO.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The identity the auth hook returned, if it is a `T`.
    ///
    /// ```
    /// # use asp_driver::Caller;
    /// #[derive(Debug, PartialEq)]
    /// struct User { id: u64 }
    /// let caller = Caller::default();
    /// assert_eq!(caller.identity::<User>(), None); // no auth hook ran
    /// ```
    pub fn identity<T: Any>(&self) -> Option<&T> {
        self.identity.as_deref()?.downcast_ref()
    }
}

/// What an auth hook decides: the identity to hand to tools, or the error
/// that refuses the client.
pub(crate) type Verdict = Result<Option<Arc<dyn Any + Send + Sync>>, ErrorInfo>;

/// Decides whether a client may connect, and who it is: `Err(error)`
/// rejects it with that code and message (`UNAUTHENTICATED`, `FORBIDDEN`,
/// …). Made by [`ServerBuilder::auth`](crate::ServerBuilder::auth) (a
/// synchronous check) or [`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)
/// (async, returning an identity).
pub type AuthHook = Arc<dyn Fn(HelloInfo) -> BoxFuture<Verdict> + Send + Sync>;

/// A synchronous yes/no check as an [`AuthHook`].
pub(crate) fn sync_hook(check: impl Fn(&HelloInfo) -> Result<(), ErrorInfo> + Send + Sync + 'static) -> AuthHook {
    Arc::new(move |hello: HelloInfo| {
        let verdict = check(&hello).map(|()| None);
        Box::pin(std::future::ready(verdict))
    })
}

/// An async hook returning an identity as an [`AuthHook`].
pub(crate) fn async_hook<F, Fut, I>(authenticate: F) -> AuthHook
where
    F: Fn(HelloInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<I, ErrorInfo>> + Send + 'static,
    I: Send + Sync + 'static,
{
    let authenticate = Arc::new(authenticate);
    Arc::new(move |hello: HelloInfo| {
        let verdict = authenticate(hello);
        Box::pin(async move { verdict.await.map(|identity| Some(Arc::new(identity) as Arc<dyn Any + Send + Sync>)) })
    })
}
