"""Postmark's own ``Message`` texts, as the fake answers them, and where each comes from.

``ErrorCode`` numbers are all in Postmark's API overview, "Error codes". The texts:

* ErrorCode 10, header missing: the text quoted by many client tests and bug reports;
  token wrong: "Request does not contain a valid Server token.", as reported by users.
* 409 "JSON required": text from a postmark-php client test fixture. Postmark's overview
  documents HTTP 415 for missing request headers, so the fake answers 415 with ErrorCode 409.
* 300: "Zero recipients specified" (postmark-java integration tests), "Provide either email
  TextBody or HtmlBody or both.", "Invalid 'From' value.", "Invalid 'To' address: '...'."
  and "Error parsing 'To': Illegal email address '...'. It must contain the '@' symbol."
  (postmark-gem, multimail and django-anymail tests and comments). The texts for more than
  50 recipients, an overlong Tag or Subject and bad Metadata are the fake's own (the metadata
  ones keep Postmark's "Invalid metadata content." opening).
* 400: "The 'From' address you supplied (...) is not a Sender Signature on your account. ..."
  (quoted in many client projects).
* 406: "You tried to send to recipient(s) that have been marked as inactive. Found inactive
  addresses: .... Inactive recipients are ones that have generated a hard bounce, a spam
  complaint, or a manual suppression." (postmark.js / postmark-gem fixtures); batch items use
  the "a recipient that has been" wording of the batch example in Postmark's email API docs.
* 410: "You may only send up to 500 messages in a single batched request." (API overview).
* 1101: "The Template's 'Alias' associated with this request is not valid or was not found."
  / "The 'TemplateId' associated with this request is not valid or was not found."
  (postmark-dotnet, postmark-java and postmarker tests). 1120 for a missing TemplateModel
  (API overview: "a required field is missing ... TemplateModel").
* 1226 / 1235 / 1236: API overview and the postmark-php integration test ("The
  'MessageStream' provided does not exist on this server."). Postmark accepts API sends on
  Broadcasts streams; only Inbound streams answer 1236, and so does the fake.
"""

from __future__ import annotations

MSG_AUTH_MISSING = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header "
    "for either X-Postmark-Server-Token or X-Postmark-Account-Token."
)
MSG_AUTH_WRONG = "Request does not contain a valid Server token."
MSG_JSON_REQUIRED = (
    "Content-Type and Accept headers must be set to application/json, text/json, or text/x-json."
)
MSG_INVALID_JSON = "Invalid JSON: the request body is not syntactically valid JSON."
MSG_ZERO_RECIPIENTS = "Zero recipients specified"
MSG_NO_BODY = "Provide either email TextBody or HtmlBody or both."
MSG_NO_FROM = "Invalid 'From' value."
MSG_TOO_MANY_BATCH = "You may only send up to 500 messages in a single batched request."
MSG_STREAM_UNKNOWN = "The 'MessageStream' provided does not exist on this server."
MSG_STREAM_NO_SENDING = (
    "Sending is not supported on the supplied 'MessageStream'. "
    "Sending is not possible with Inbound Message Streams."
)
MSG_NO_TEMPLATE_ID = "The 'TemplateId' associated with this request is not valid or was not found."
MSG_NO_TEMPLATE_ALIAS = (
    "The Template's 'Alias' associated with this request is not valid or was not found."
)
MSG_STREAM_NOT_FOUND = "The message stream for the provided 'ID' was not found."
MSG_INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: {addresses}. Inactive recipients are ones that have generated a hard bounce, "
    "a spam complaint, or a manual suppression."
)
MSG_INACTIVE_BATCH = (
    "You tried to send to a recipient that has been marked as inactive. Found inactive "
    "addresses: {addresses}. Inactive recipients are ones that have generated a hard bounce, "
    "a spam complaint, or a manual suppression. "
)
MSG_NOT_SIGNATURE = (
    "The 'From' address you supplied ({sender}) is not a Sender Signature on your account. "
    "Please add and confirm this address in order to be able to use it in the 'From' field of "
    "your messages."
)
