"""The fleet on the network (SPEC 13): devices publish their signed bodies to an MQTT broker,
`edgekit fleet serve` verifies, stores and acknowledges them, `edgekit fleet broker` runs an
embedded broker for a demo or a test. Layers: topics (names), ingest (transport-free
verify -> store -> answer), service (MQTT wiring), broker (embedded amqtt), cli."""
