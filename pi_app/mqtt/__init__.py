"""Home Assistant over MQTT (``[mqtt]``): `bridge` (the client: discovery, state, commands
through the control vocabulary); its settings, checked with the rest of the config, are
`pi_app.mqtt_config`. Only `bridge` imports paho-mqtt, and only when a ``[mqtt]`` section
names a host."""
