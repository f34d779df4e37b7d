// Types for the part of disk.mjs (the fake limactl's disk files) that tests import.

/** `qemu-img create -f qcow2 -F qcow2 -b BACKING path`, with the fake's payload after the header cluster. */
export function createOverlay(path: string, backing: string, virtualSize?: number): void;
