//! `drop`: drops every packet and ends the chain.
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};
use netkit_common::verdict;

netkit_ebpf::license!();

#[classifier]
pub fn drop(_ctx: TcContext) -> i32 {
    verdict::DROP
}
