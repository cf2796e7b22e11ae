//! linehub: connects LINE Official Accounts to a HubSpot portal, self-hosted.
//!
//! A LINE webhook arrives at [`http`], is verified and committed to the [`store`]'s inbox before
//! it is acknowledged, and is then turned into HubSpot contact state. [`config`] is the one YAML
//! file that says which accounts exist; [`pipelines`] are the scheduled jobs defined beside it;
//! [`sends`] carries out the LINE messages HubSpot workflows ask for; [`login`] links LINE
//! users to contacts through LINE Login, with [`qr`] codes of its links;
//! [`daemon`] wires the pieces into the running service, and [`liveness`] tells `/healthz` whether
//! they all still run; [`yaml`] reads both kinds of file with
//! positions, so every error names file, line and field.
//! This crate is the library behind the `linehub` binary; the binary only parses arguments.

#![warn(missing_docs)]

pub mod apply;
pub mod clock;
pub mod config;
#[doc(hidden)]
pub mod crash;
pub mod daemon;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod http;
pub mod hubspot;
pub mod line;
pub mod liveness;
pub mod login;
pub mod pipelines;
pub mod qr;
pub mod retry;
pub mod sends;
pub mod settings;
pub mod store;
pub mod sync;
pub mod yaml;
