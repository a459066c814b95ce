"""Channel webhooks: one middleware kind per chat platform (Slack, Telegram, Discord, Feishu/Lark,
DingTalk, WeCom, WebChat).

Each kind verifies a webhook request exactly the way its platform signs it, answers the
platform's handshake itself (Slack's `url_verification`, Discord's PING, Feishu's challenge,
WeCom's `echostr`), drops a delivery it has already seen, and forwards the event to the service
behind it as one JSON shape, whatever the platform (`_event.ChannelEvent`). A request that fails
verification is a 401 and never reaches the service.

The verification and normalisation of each platform are pure functions of the request's parts
and `now` (tested on the platforms' published example signatures); `_webhook.ChannelKind` is the
one piece of I/O around them. The config models are in `schemas/`, one per platform, declared as
middlewares (stdlib/middlewares/schemas/channels.py imports them for the compiler).
"""
