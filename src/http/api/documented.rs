//! Resources registered from their OpenAPI operations. A [`DocumentedResource`] is served at the
//! path its operations' `#[utoipa::path]` attributes name, for the methods they name, and hands
//! those operations to the OpenAPI document: the router and the document are built from the same
//! attributes, so neither can name a route the other lacks. Every operation of a path shares one
//! actix resource, so a method the path does not serve is answered 405.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::{web, FromRequest, Handler, Responder};
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa_actix_web::OpenApiFactory;

/// Schemas an operation refers to, by name.
type Schemas = Vec<(String, RefOr<Schema>)>;

/// One path of the API with the operations served there.
pub struct DocumentedResource {
    /// The path, relative to the enclosing scope.
    path: String,
    /// The actix resource at that path.
    resource: actix_web::Resource,
    /// The operations, for the document.
    paths: Paths,
    /// The schemas they refer to.
    schemas: Schemas,
}

impl DocumentedResource {
    /// A resource at `operation`'s path, serving it with `handler`.
    pub fn new<O, F, Args>(operation: O, handler: F) -> Self
    where
        O: utoipa::Path + OpenApiFactory,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let path = O::path();
        Self {
            resource: web::resource(path.as_str()),
            path,
            paths: Paths::new(),
            schemas: Schemas::new(),
        }
        .and(operation, handler)
    }

    /// Also serves `operation` (whose path must be this resource's) with `handler`.
    ///
    /// # Panics
    /// When the operation names another path: a mistake in the route table, caught by any test
    /// that starts the server.
    pub fn and<O, F, Args>(mut self, operation: O, handler: F) -> Self
    where
        O: utoipa::Path + OpenApiFactory,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        assert_eq!(O::path(), self.path, "an operation of another path");
        for method in O::methods() {
            let route = web::method(actix_method(&method)).to(handler.clone());
            self.resource = self.resource.route(route);
        }
        self.paths.merge(operation.paths());
        operation.schemas(&mut self.schemas);
        self
    }
}

/// actix's name for an OpenAPI method.
fn actix_method(method: &HttpMethod) -> actix_web::http::Method {
    use actix_web::http::Method;
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

impl HttpServiceFactory for DocumentedResource {
    fn register(self, config: &mut AppService) {
        self.resource.register(config);
    }
}

impl OpenApiFactory for DocumentedResource {
    fn paths(&self) -> Paths {
        self.paths.clone()
    }

    fn schemas(&self, schemas: &mut Schemas) {
        schemas.extend(self.schemas.iter().cloned());
    }
}
