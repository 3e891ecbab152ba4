//! Routers that remember what they route. A route is added as a path and an [`Endpoint`] (the
//! handlers by method, built with this module's `get`, `post`, `put`, `delete` as with axum's),
//! and [`Routes`] keeps the table of paths and methods beside the axum router, so that the
//! OpenAPI documents (`http::openapi`) are checked against what is really routed: every route
//! documented, every documented operation routed.

use axum::handler::Handler;
use axum::routing::{self, MethodRouter};
use axum::Router;

/// The handlers of one path, by method, and the names of those methods (lower case, as
/// OpenAPI's path items name them).
pub struct Endpoint<S> {
    methods: Vec<&'static str>,
    router: MethodRouter<S>,
}

macro_rules! methods {
    ($($name:ident),*) => {
        $(
            #[doc = concat!("An endpoint answering `", stringify!($name), "` with `h`.")]
            pub fn $name<H, T, S>(h: H) -> Endpoint<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                Endpoint { methods: vec![stringify!($name)], router: routing::$name(h) }
            }
        )*

        impl<S: Clone + Send + Sync + 'static> Endpoint<S> {
            $(
                #[doc = concat!("Also answers `", stringify!($name), "` with `h`.")]
                pub fn $name<H, T>(mut self, h: H) -> Self
                where
                    H: Handler<T, S>,
                    T: 'static,
                {
                    self.methods.push(stringify!($name));
                    self.router = self.router.$name(h);
                    self
                }
            )*
        }
    };
}

methods!(get, post, put, patch, delete);

/// An axum router and the table of what it routes.
pub struct Routes<S> {
    router: Router<S>,
    table: Vec<(&'static str, Vec<&'static str>)>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    pub fn route(mut self, path: &'static str, e: Endpoint<S>) -> Self {
        self.router = self.router.route(path, e.router);
        self.table.push((path, e.methods));
        self
    }

    /// Each routed path with its methods (lower case).
    pub fn table(&self) -> &[(&'static str, Vec<&'static str>)] {
        &self.table
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}
