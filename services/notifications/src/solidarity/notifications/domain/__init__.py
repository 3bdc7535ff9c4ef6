"""Pure rules of the notifications service: kinds, purposes, keys, schedules, time display."""
