"""The system under test and the machine it runs on.

definition (what a compose file declares; needs no engine), compose (a running stack), toxiproxy
(a client with a timeout on every call), engine (the Docker SDK), room (a room-api client),
addresses (the one policy for where deadair may send traffic), provision (`deadair setup`).
"""
