// Package bot is rebootbot's Slack front end: it verifies and decodes what
// Slack sends (slash commands, button clicks, modal submissions) over HTTP or
// Socket Mode, parses the /reboot grammar, renders approval cards as pure
// functions, and calls Slack's Web API as the engine's Notifier and Groups.
package bot
