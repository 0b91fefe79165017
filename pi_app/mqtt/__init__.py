"""Home Assistant over MQTT (``[mqtt]``): `config` (the settings, checked with the rest of the
config) and `bridge` (the client: discovery, state, commands through the control vocabulary).
Only `bridge` imports paho-mqtt, and only when a ``[mqtt]`` section names a host."""
