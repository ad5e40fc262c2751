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

// codeNames is the one table of what each code is called by the HTTP
// APIs: the legacy HTTP API's error name (spec §4.3, the HTTP <-> XMPP
// table) and FCM HTTP v1's FcmError errorCode (Google's migration table).
// A key is a code, or for INVALID_JSON the code and its sub-code
// ("INVALID_JSON/INVALID_TTL"). The legacy API answers a code without a
// legacy name (unparsable JSON, fields of the wrong type) with status 400
// for the whole request; v1 answers every INVALID_JSON INVALID_ARGUMENT.
var codeNames = map[string]codeName{
	string(CodeBadRegistration):             {"InvalidRegistration", V1InvalidArgument},
	"BAD_REGISTRATION/" + SubSenderMismatch: {"MismatchSenderId", V1SenderIDMismatch},
	string(CodeDeviceUnregistered):          {"NotRegistered", V1Unregistered},
	string(CodeServiceUnavailable):          {"Unavailable", V1Unavailable},
	string(CodeConnectionDraining):          {"Unavailable", V1Unavailable},
	string(CodeInternalServerError):         {"InternalServerError", V1Internal},
	string(CodeDeviceMessageRateExceeded):   {"DeviceMessageRateExceeded", V1QuotaExceeded},
	string(CodeTopicsMessageRateExceeded):   {"TopicsMessageRateExceeded", V1QuotaExceeded},
	string(CodeInvalidJSON):                 {"", V1InvalidArgument},
	"INVALID_JSON/MISSING_REGISTRATION":     {"MissingRegistration", V1InvalidArgument},
	"INVALID_JSON/MESSAGE_TOO_BIG":          {"MessageTooBig", V1InvalidArgument},
	"INVALID_JSON/INVALID_DATA_KEY":         {"InvalidDataKey", V1InvalidArgument},
	"INVALID_JSON/INVALID_TTL":              {"InvalidTtl", V1InvalidArgument},
	"INVALID_JSON/INVALID_PACKAGE_NAME":     {"InvalidPackageName", V1InvalidArgument},
}

// codeName is one row of codeNames.
type codeName struct {
	http string // legacy HTTP error name; "" when the request gets a 400
	v1   string // FCM v1 errorCode
}

// FCM HTTP v1's FcmError error codes ccsd answers.
const (
	V1InvalidArgument  = "INVALID_ARGUMENT"
	V1Unregistered     = "UNREGISTERED"
	V1SenderIDMismatch = "SENDER_ID_MISMATCH"
	V1QuotaExceeded    = "QUOTA_EXCEEDED"
	V1Unavailable      = "UNAVAILABLE"
	V1Internal         = "INTERNAL"
)

// V1Error is a nack in FCM HTTP v1's terms: the HTTP status, the
// google.rpc status name and the FcmError errorCode.
type V1Error struct {
	HTTPStatus int
	Status     string
	ErrorCode  string
}

// v1Errors gives each v1 errorCode its status, as Google documents them.
var v1Errors = map[string]V1Error{
	V1InvalidArgument:  {400, "INVALID_ARGUMENT", V1InvalidArgument},
	V1Unregistered:     {404, "NOT_FOUND", V1Unregistered},
	V1SenderIDMismatch: {403, "PERMISSION_DENIED", V1SenderIDMismatch},
	V1QuotaExceeded:    {429, "RESOURCE_EXHAUSTED", V1QuotaExceeded},
	V1Unavailable:      {503, "UNAVAILABLE", V1Unavailable},
	V1Internal:         {500, "INTERNAL", V1Internal},
}

// V1 is the nack in FCM HTTP v1's terms (the codeNames table); a code
// not in it is INTERNAL.
func (n *Nack) V1() V1Error {
	key := string(n.Code)
	row, ok := codeNames[key+"/"+n.Sub]
	if !ok {
		row, ok = codeNames[key]
	}
	if !ok {
		return v1Errors[V1Internal]
	}
	return v1Errors[row.v1]
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

// HTTPError is the legacy HTTP API's name for the nack (the codeNames
// table), as put in a result's "error" field. It reports false for problems
// that HTTP answers with status 400 for the whole request instead.
func (n *Nack) HTTPError() (string, bool) {
	key := string(n.Code)
	if n.Code == CodeInvalidJSON && n.Sub == "" {
		return "", false
	}
	if n.Sub != "" {
		if row, ok := codeNames[key+"/"+n.Sub]; ok || n.Code == CodeInvalidJSON {
			return row.http, ok
		}
	}
	row, ok := codeNames[key]
	return row.http, ok && row.http != ""
}

// RateExceeded answers a message over a per-registration rate; direction
// is "Upstream" or "Downstream".
func RateExceeded(direction string) *Nack {
	return &Nack{Code: CodeDeviceMessageRateExceeded, Description: direction + " message rate exceeded for this registration id"}
}
