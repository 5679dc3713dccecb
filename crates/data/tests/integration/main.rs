//! End-to-end tests of nabla-data; every fixture is written by the tests themselves.

mod alloc;
mod cifar;
mod common;
mod csv;
mod download;
mod fashion_real;
mod folder;
mod fuzz;
mod idx;
mod loader;
mod scenes;
