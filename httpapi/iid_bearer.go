package httpapi

// AcceptBearer makes the Instance ID endpoints accept "Authorization:
// Bearer TOKEN" (the HTTP v1 credentials) beside API keys, as
// firebase-admin sends them with "access_token_auth: true".
func (h *IIDHandler) AcceptBearer(b BearerAuthenticator) { h.keys.bearer = b }
