//! Integration tests against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok, started on loopback by
//! `support::cluster`). One test binary, so the cluster starts once.

mod support;

mod chart;
mod crds;
mod gateway;
mod harness;
mod meeting_controller;
mod plugin;
mod pod_security;
mod retention;
