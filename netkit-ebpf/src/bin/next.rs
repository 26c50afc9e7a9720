//! `next`: does nothing and hands the packet to the next program in the chain
//! (after the last one, the hook's default applies).
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};
use netkit_common::verdict;

netkit_ebpf::license!();

#[classifier]
pub fn next(_ctx: TcContext) -> i32 {
    verdict::NEXT
}
