# The request body subsystem, in the order a body meets it:
#   stream.py   BodyStream: one request's body from its BodySource (HTTP bytes, or a virtual
#               request's value), streamed or cached under the request's limits
#   budget.py   MemoryBudget: the process-wide ceiling on cached bodies; allocator tuning
#   decoding.py charset and Content-Encoding decoding, JSON/text/raw readers, size checks
#   multipart.py multipart/form-data and urlencoded forms (fields and file parts)
#   parsers.py  the Express body-parser middlewares (json, urlencoded, text, raw, multipart)
# Must not: know the transport (gateway.server) or the router; the app layer (gateway.app) uses
# it through Request.body_stream and the parser middlewares.
