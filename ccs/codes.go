package ccs

// Code is a CCS nack error code, as sent in the "error" field of a nack.
type Code string

// The nack codes of the CCS protocol that ccsd emits (spec §4.3).
const (
	CodeBadAck              Code = "BAD_ACK"
	CodeBadRegistration     Code = "BAD_REGISTRATION"
	CodeDeviceUnregistered  Code = "DEVICE_UNREGISTERED"
	CodeInvalidJSON         Code = "INVALID_JSON"
	CodeServiceUnavailable  Code = "SERVICE_UNAVAILABLE"
	CodeInternalServerError Code = "INTERNAL_SERVER_ERROR"
	CodeConnectionDraining  Code = "CONNECTION_DRAINING"
	// CodeDeviceMessageRateExceeded: too many messages to (or from) one
	// registration; the peer is to slow down for it, not retry at once.
	CodeDeviceMessageRateExceeded Code = "DEVICE_MESSAGE_RATE_EXCEEDED"
	// CodeTopicsMessageRateExceeded: too many messages to one topic; the
	// app server is to slow down for that topic.
	CodeTopicsMessageRateExceeded Code = "TOPICS_MESSAGE_RATE_EXCEEDED"
)

// httpNames is the one table of the legacy HTTP API's error names beside
// the XMPP codes (spec §4.3, the HTTP <-> XMPP table). A key is a code, or
// for INVALID_JSON the code and its sub-code ("INVALID_JSON/INVALID_TTL").
// What is not here is answered by HTTP with status 400 for the whole
// request: unparsable JSON and fields of the wrong type.
var httpNames = map[string]string{
	string(CodeBadRegistration):             "InvalidRegistration",
	"BAD_REGISTRATION/" + SubSenderMismatch: "MismatchSenderId",
	string(CodeDeviceUnregistered):          "NotRegistered",
	string(CodeServiceUnavailable):          "Unavailable",
	string(CodeConnectionDraining):          "Unavailable",
	string(CodeInternalServerError):         "InternalServerError",
	string(CodeDeviceMessageRateExceeded):   "DeviceMessageRateExceeded",
	string(CodeTopicsMessageRateExceeded):   "TopicsMessageRateExceeded",
	"INVALID_JSON/MISSING_REGISTRATION":     "MissingRegistration",
	"INVALID_JSON/MESSAGE_TOO_BIG":          "MessageTooBig",
	"INVALID_JSON/INVALID_DATA_KEY":         "InvalidDataKey",
	"INVALID_JSON/INVALID_TTL":              "InvalidTtl",
	"INVALID_JSON/INVALID_PACKAGE_NAME":     "InvalidPackageName",
}

// SubSenderMismatch marks a BAD_REGISTRATION whose token is valid but
// belongs to another sender: XMPP says BAD_REGISTRATION, all CCS
// documents, and the legacy HTTP API MismatchSenderId (spec §11).
const SubSenderMismatch = "SENDER_MISMATCH"

// Nack is a refused message: a code and the human-readable
// error_description that goes with it.
type Nack struct {
	Code        Code
	Description string
	// Sub refines the code: for INVALID_JSON its sub-code
	// (MISSING_REGISTRATION, INVALID_TTL, JSON_TYPE_ERROR, ...); for other
	// codes a distinction only the legacy HTTP API makes (SubSenderMismatch).
	// It is not written to XMPP: CCS's nacks carry only the code.
	Sub string
}

// Error makes a Nack an error: its code and description.
func (n *Nack) Error() string { return string(n.Code) + ": " + n.Description }

// InvalidJSON builds an INVALID_JSON nack whose description follows CCS's
// "InvalidJson : SUBCODE : text" form, so that app servers that log or match
// on it see what they saw from Google.
func InvalidJSON(subcode, text string) *Nack {
	return &Nack{Code: CodeInvalidJSON, Sub: subcode, Description: "InvalidJson : " + subcode + " : " + text}
}

// HTTPError is the legacy HTTP API's name for the nack (the httpNames
// table), as put in a result's "error" field. It reports false for problems
// that HTTP answers with status 400 for the whole request instead.
func (n *Nack) HTTPError() (string, bool) {
	key := string(n.Code)
	if n.Code == CodeInvalidJSON && n.Sub == "" {
		return "", false
	}
	if n.Sub != "" {
		if name, ok := httpNames[key+"/"+n.Sub]; ok || n.Code == CodeInvalidJSON {
			return name, ok
		}
	}
	name, ok := httpNames[key]
	return name, ok
}

// RateExceeded answers a message over a per-registration rate; direction
// is "Upstream" or "Downstream".
func RateExceeded(direction string) *Nack {
	return &Nack{Code: CodeDeviceMessageRateExceeded, Description: direction + " message rate exceeded for this registration id"}
}
