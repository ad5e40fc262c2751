package ccs

// The control types a device may send (ccsd's own device protocol:
// docs/device-protocol.md, "Priority and doze").
const (
	ControlDoze  = "DOZE"
	ControlAwake = "AWAKE"
)

// Control validates the stanza as a device's control message
// ({"message_type":"control","control_type":"DOZE"|"AWAKE","message_id":ID})
// and returns its control type. A missing or unknown control_type, a
// missing message_id (the ack names it) or a repeated field is
// INVALID_JSON, as every bad device stanza is.
func (env *Stanza) Control() (string, *Nack) {
	if n := env.check(env.ID); n != nil {
		return "", n
	}
	if env.ID == "" {
		return "", InvalidJSON("INVALID_PARAMETERS", "Missing Required Field: message_id")
	}
	ct, n := optString(env.ControlType, "control_type")
	if n != nil {
		return "", n
	}
	if ct != ControlDoze && ct != ControlAwake {
		return "", InvalidJSON("INVALID_PARAMETERS", `control_type must be "DOZE" or "AWAKE": `+clip(ct))
	}
	return ct, nil
}
