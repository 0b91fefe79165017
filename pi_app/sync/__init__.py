"""Lockstep: several daemons play one show, frame for frame, with no master.

A show is a pure function of (config, seed, time). With ``[sync]`` set, show time is the wall
clock (CLOCK_REALTIME, disciplined by chrony/NTP) since the group's epoch, so frame k is due
at ``epoch + k / fps`` on every member and the walk's phase is a function of show time and the
group's live changes (`pi_app.phase`). Nothing is streamed; the members only tell each other
about live changes, and who they are.

* `clock` — `SyncClock`: the frame clock on the wall clock, slewing small clock corrections
  and jumping large ones safely; `FastSyncClock` on a virtual wall clock for tests.
* `wire` — messages: JSON signed with HMAC-SHA256, replays refused.
* `state` — a member's live state as a snapshot (for late joiners and repairs).
* `group` — `Lockstep`: the member itself (socket, peers, scheduled changes, status).
* `timestate` — is this machine's clock synchronised (adjtimex, chrony, timedatectl)?

Its config section, ``[sync]`` (group, epoch, key, multicast address, lead time), is
`pi_app.sync_config`, beside the other sections.
"""
