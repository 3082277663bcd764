package dart_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/clientsdk/app"
	"github.com/dartup/dartup/internal/testutil"
)

// dartSource returns the text of lib/src/NAME.
func dartSource(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "clientsdk", "dart", "lib", "src", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// block returns the text of src from the line holding start to the next
// line holding end.
func block(t *testing.T, src, start, end string) string {
	t.Helper()
	i := strings.Index(src, start)
	if i < 0 {
		t.Fatalf("Dart source lacks %q", start)
	}
	j := strings.Index(src[i:], end)
	if j < 0 {
		t.Fatalf("Dart source lacks %q after %q", end, start)
	}
	return src[i : i+j]
}

var dartKeyRe = regexp.MustCompile(`'([A-Za-z0-9_]+)':`)
var jsonKeyRe = regexp.MustCompile(`"([A-Za-z0-9_]+)":`)

func keys(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDartSourceMatchesProtocol guards against drift between the Dart code,
// docs/protocol.md and the bytes the wire tests replay: the constants and key
// orders the replays rely on are read from the Dart source itself.
func TestDartSourceMatchesProtocol(t *testing.T) {
	version := regexp.MustCompile(`const String packageVersion = '([^']+)';`).FindStringSubmatch(dartSource(t, "version.dart"))
	if version == nil {
		t.Fatal("version.dart: no packageVersion")
	}
	if !strings.Contains(connectLine, `"name":"dartup-dart/`+version[1]+` `) || !strings.Contains(connectLine, `"version":"`+version[1]+`"`) {
		t.Errorf("the replayed CONNECT does not carry package version %s", version[1])
	}

	// CONNECT: same keys in the same order (credentials come last).
	nats := dartSource(t, "nats.dart")
	got := keys(dartKeyRe, block(t, nats, "final connect = <String, Object>{", "};"))
	want := append(keys(jsonKeyRe, connectLine), "user", "pass", "auth_token")
	if !slices.Equal(got, want) {
		t.Errorf("CONNECT keys in nats.dart %v, replayed %v", got, want)
	}
	for _, s := range []string{"'echo': false", "'verbose': false", "'headers': true", "'no_responders': true"} {
		if !strings.Contains(nats, s) {
			t.Errorf("nats.dart: CONNECT lacks %s", s)
		}
	}

	// Subjects and headers shared with clientsdk/app.
	client := dartSource(t, "client.dart")
	for _, s := range []string{
		"senderHeader = '" + app.HeaderSender + "'",
		"eventPrefix = 'dartup.app'",
		"'lambda.$lambdaName'",
		"'$inboxBase.${randomToken()}'",
		"nonEmpty('NATS_INBOX_PREFIX') ?? '_INBOX'",
		"reply.header('" + clientsdk.HeaderServiceErrorCode + "')",
		"reply.header('" + clientsdk.HeaderServiceError + "')",
	} {
		if !strings.Contains(client, s) {
			t.Errorf("client.dart lacks %s", s)
		}
	}
	if app.EventSubject("chat", "greeting") != "dartup.app.chat.greeting" || clientsdk.LambdaSubject("hello") != "lambda.hello" {
		t.Error("Go subjects differ from docs/protocol.md")
	}

	// Runtime API calls and headers of runLambda.
	lambda := dartSource(t, "lambda.dart")
	for _, s := range []string{
		"'http://${_trimApi(api)}/2018-06-01'",
		"'/runtime/invocation/next'",
		"'/runtime/invocation/${Uri.encodeComponent(requestId)}/response'",
		"'/runtime/invocation/${Uri.encodeComponent(requestId)}/error'",
		"'/runtime/init/error'",
		"'lambda-runtime-function-error-type'",
		"'lambda-runtime-aws-request-id'",
		"'lambda-runtime-deadline-ms'",
		"_http.autoUncompress = false",
		"req.contentLength = body.length",
		"'errorMessage': error.toString()",
	} {
		if !strings.Contains(lambda, s) {
			t.Errorf("lambda.dart lacks %s", s)
		}
	}
	if got := keys(dartKeyRe, block(t, lambda, "final doc = <String, Object>{", "};")); !slices.Equal(got, []string{"errorMessage", "errorType", "stackTrace"}) {
		t.Errorf("error body keys %v", got)
	}

	// The native protocol (docs/protocol.md 7): names shared with the Go
	// side, the limits, the order of the done notice and the answer, and the
	// service-error body's keys.
	native := dartSource(t, "native.dart")
	for _, s := range []string{
		"nativeSubjectVar = '" + clientsdk.EnvLambdaSubject + "'",
		"nativeControlVar = '" + clientsdk.EnvLambdaControl + "'",
		"noticeHeader = '" + clientsdk.HeaderNotice + "'",
		"requestIdHeader = '" + clientsdk.HeaderRequestID + "'",
		"deadlineHeader = '" + clientsdk.HeaderDeadline + "'",
		"replyHeader = '" + clientsdk.HeaderLambdaReply + "'",
		"stopHeader = '" + clientsdk.HeaderLambdaStop + "'",
		"statusHeader = '" + clientsdk.HeaderLambdaStatus + "'",
		"errorTypeHeader = '" + clientsdk.HeaderErrorType + "'",
		"noticeHeader: '" + clientsdk.NoticeReady + "'",
		"noticeHeader: '" + clientsdk.NoticeDone + "'",
		"noticeHeader: '" + clientsdk.NoticeInitError + "'",
		"event.header('" + clientsdk.HeaderTraceparent + "')",
		"event.header('" + clientsdk.HeaderClientContext + "')",
		"event.header('" + clientsdk.HeaderCognitoIdentity + "')",
		"type = '" + clientsdk.TypeResponseTooLarge + "'",
		"'" + clientsdk.HeaderServiceError + "': headerValue(cut)",
		"'" + clientsdk.HeaderServiceErrorCode + "': '$status'",
		"name: '$userAgent $functionName'",
		"maxResponseBytes = 6 * 1024 * 1024 + 100",
		"maxErrorMessageBytes = 32 * 1024",
		"if ((env[nativeSubjectVar] ?? '').isNotEmpty) {",
	} {
		if !strings.Contains(native+lambda, s) {
			t.Errorf("native.dart lacks %s", s)
		}
	}
	if clientsdk.MaxLambdaResponseBytes != 6*1024*1024+100 || clientsdk.MaxErrorMessageBytes != 32*1024 {
		t.Error("the Go limits differ from native.dart's")
	}
	if d, a := strings.Index(native, "nc.publish(control, const <int>[], headers: done)"), strings.Index(native, "nc.publish(reply, result)"); d < 0 || a < 0 || d > a {
		t.Error("native.dart must send the done notice before the answer")
	}
	if got := keys(dartKeyRe, block(t, native, "final doc = <String, Object>{", "};")); !slices.Equal(got, []string{"code", "errorType", "errorMessage"}) {
		t.Errorf("service error body keys %v", got)
	}
	if got := keys(jsonKeyRe, string((&clientsdk.Error{}).Body())); !slices.Equal(got, []string{"code", "errorType", "errorMessage"}) {
		t.Errorf("Go service error body keys %v", got)
	}

	// Proxy response keys, in order.
	resp := dartSource(t, "response.dart")
	if got := keys(dartKeyRe, block(t, resp, "final out = <String, Object?>{", "};")); !slices.Equal(got, []string{"statusCode", "statusDescription", "headers", "body", "isBase64Encoded"}) {
		t.Errorf("proxy response keys %v", got)
	}
	if !strings.Contains(dartSource(t, "version.dart"), "userAgent = 'dartup-dart/$packageVersion'") {
		t.Error("version.dart: user-agent is not dartup-dart/VERSION")
	}
}
