#!/usr/bin/perl
# Every error the module answers itself, with its exact status and body:
# method, media type, JSON checks, unknown model, body too large (nginx's
# limit and the ring's), engine busy, read timeout (JSON and in-band),
# malformed engine output; and the nginx-side errors the example configs
# turn into OpenAI shapes (limit_req 429, API key 401).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

sub err_body {
    my ($code, $type, $message, $param) = @_;
    return '{"error":{"message":' . JSON::PP->new->encode([$message]) =~ s/^\[|\]$//gr
        . ',"type":"' . $type . '","param":'
        . (defined $param ? "\"$param\"" : 'null') . ',"code":' . $code . '}}';
}

sub is_error {
    my ($r, $code, $type, $message, $param, $name) = @_;
    is($r->{status}, $code, "$name: status $code");
    is($r->{headers}{'content-type'}, 'application/json', "$name: json");
    is($r->{headers}{'content-length'}, length $r->{body},
       "$name: Content-Length");
    if (ref $message) {
        like($r->{json}{error}{message} // '', $message, "$name: message");
        is_deeply([ @{ $r->{json}{error} }{qw(type param code)} ],
                  [ $type, $param, $code ], "$name: type, param, code");
    } else {
        is($r->{body}, err_body($code, $type, $message, $param),
           "$name: body");
    }
}

my $t = GlmTest->new->run(http => <<'END', server => <<"END2");
    client_max_body_size 64k;
    limit_req_zone $binary_remote_addr zone=glm_test:1m rate=1r/m;
    limit_req_status 429;
    map $http_authorization $glm_key_ok {
        default            0;
        "Bearer test-key"  1;
    }
END
$GlmTest::LOCATIONS
        location = /slow {
            glm_read_timeout 1s;
            glm_pass chat;
        }
        location = /limited {
            limit_req zone=glm_test nodelay;
            glm_pass chat;
        }
        location = /keyed {
            default_type application/json;
            if (\$glm_key_ok = 0) {
                return 401 '{"error":"Unauthorized"}';
            }
            glm_pass chat;
        }
        # statuses nginx may make on an API location, each through
        # glm_pass error (as glm-api.conf's list does)
        error_page 400 404 414 494 500 501 502 503 504 /_glm_error;
        location = /_glm_error { internal; glm_pass error; }
        location ~ ^/status/400\$ { return 400; }
        location ~ ^/status/494\$ { return 494; }
        location ~ ^/status/500\$ { return 500; }
        location ~ ^/status/501\$ { return 501; }
        location ~ ^/status/502\$ { return 502; }
        location ~ ^/status/503\$ { return 503; }
        location ~ ^/status/504\$ { return 504; }
END2

my $chat = '/v1/chat/completions';
my $r;

# ---- what glm_pass error answers for each status nginx makes ----

for my $e ([ 400, 400, 'BadRequestError', 'Bad Request' ],
           [ 494, 400, 'BadRequestError', 'Bad Request' ],
           [ 500, 500, 'InternalServerError', 'Internal Server Error' ],
           [ 501, 501, 'NotImplementedError', 'Not Implemented' ],
           [ 502, 502, 'BadGatewayError', 'Bad Gateway' ],
           [ 503, 503, 'ServiceUnavailableError', 'Service Unavailable' ],
           [ 504, 504, 'GatewayTimeoutError', 'Gateway Timeout' ])
{
    my ($from, $code, $type, $message) = @$e;
    $r = $t->get("/status/$from");
    is_error($r, $code, $type, $message, undef, "nginx's $from");
}
is($r->{headers}{'retry-after'}, undef, "nginx's 504: no Retry-After");
is($t->get('/status/503')->{headers}{'retry-after'}, 1,
   "nginx's 503: Retry-After");
is_error($t->get('/nowhere'), 404, 'NotFoundError', 'Not Found', undef,
         'unknown path');
is_error($t->get('/' . ('x' x 20000)), 414, 'RequestURITooLongError',
         'Request-URI Too Large', undef, 'huge URI');

# ---- method and media type ----

$r = $t->get($chat);
is_error($r, 405, 'MethodNotAllowedError', 'Method Not Allowed', undef,
         'GET chat');
is($r->{headers}{allow}, 'POST', 'GET chat: Allow');

$r = $t->post('/v1/models', '{}');
is_error($r, 405, 'MethodNotAllowedError', 'Method Not Allowed', undef,
         'POST models');
is($r->{headers}{allow}, 'GET', 'POST models: Allow');

$r = $t->request(method => 'PUT', path => $chat, body => '{}',
                 type => 'application/json');
is($r->{status}, 405, 'PUT chat: 405');

my $media = "Unsupported Media Type: Only 'application/json' is allowed";

$r = $t->request(method => 'POST', path => $chat,
                 body => GlmTest::chat_body());
is_error($r, 400, 'BadRequestError', $media, undef, 'no Content-Type');

$r = $t->post($chat, GlmTest::chat_body(), type => 'text/plain');
is_error($r, 400, 'BadRequestError', $media, undef, 'text/plain');

$r = $t->post($chat, GlmTest::chat_body(), type => 'application/jsonl');
is_error($r, 400, 'BadRequestError', $media, undef, 'application/jsonl');

# ---- JSON checks ----

$r = $t->post($chat, '');
is_error($r, 400, 'BadRequestError',
         'The request body is empty; expected a JSON object', undef,
         'empty body');

$r = $t->post($chat, '{"messages": [');
is_error($r, 400, 'BadRequestError', qr/^Invalid JSON in the request body/,
         undef, 'truncated JSON');

$r = $t->post($chat, "{'messages': []}");
is_error($r, 400, 'BadRequestError', qr/^Invalid JSON in the request body/,
         undef, 'not JSON');

$r = $t->post($chat, '[{"role":"user"}]');
is_error($r, 400, 'BadRequestError', 'The request body must be a JSON object',
         undef, 'array body');

$r = $t->post($chat, '{"model":"x"}');
is_error($r, 400, 'BadRequestError', "'messages' is a required field",
         'messages', 'no messages');

$r = $t->post($chat, '{"messages":[]}');
is_error($r, 400, 'BadRequestError', "'messages' must be a non-empty array",
         'messages', 'empty messages');

$r = $t->post($chat, '{"messages":"hi"}');
is_error($r, 400, 'BadRequestError', "'messages' must be a non-empty array",
         'messages', 'string messages');

$r = $t->post($chat, '{"messages":[{"role":"user"},"x"]}');
is_error($r, 400, 'BadRequestError', "'messages[1]' must be an object",
         'messages', 'message not an object');

$r = $t->post($chat, GlmTest::chat_body(stream => 'yes'));
is_error($r, 400, 'BadRequestError', "'stream' must be a boolean", 'stream',
         'stream not bool');

$r = $t->post($chat, GlmTest::chat_body(model => 7));
is_error($r, 400, 'BadRequestError', "'model' must be a string", 'model',
         'model not string');

$r = $t->post($chat, GlmTest::chat_body(model => 'gpt-4'));
is_error($r, 404, 'NotFoundError', 'The model `gpt-4` does not exist.',
         'model', 'unknown model');

$r = $t->post($chat, GlmTest::chat_body(model => "q\"uo\\te", stream => \1));
is_error($r, 404, 'NotFoundError', "The model `q\"uo\\te` does not exist.",
         'model', 'unknown model, escaped, streaming');

$r = $t->post('/tokenize', { model => 'nope', prompt => 'x' });
is_error($r, 404, 'NotFoundError', 'The model `nope` does not exist.',
         'model', 'tokenize: unknown model');

for my $case ([ max_tokens => -1 ], [ max_tokens => 1.5 ],
              [ max_completion_tokens => '10' ], [ n => JSON::PP::true ])
{
    my ($k, $v) = @$case;
    $r = $t->post($chat, GlmTest::chat_body($k => $v));
    is_error($r, 400, 'BadRequestError', "'$k' must be a non-negative integer",
             $k, "$k invalid");
}

for my $k (qw(temperature top_p)) {
    $r = $t->post($chat, GlmTest::chat_body($k => 'warm'));
    is_error($r, 400, 'BadRequestError', "'$k' must be a number", $k,
             "$k invalid");
}

$r = $t->post($chat, GlmTest::chat_body(max_tokens => 5, n => 1,
                                        temperature => 0.5, top_p => 1,
                                        stream => undef, unknown => [1]));
is($r->{status}, 200, 'valid fields and unknown ones pass');

# ---- body size: nginx's limit, shaped by error_page @glm_error ----

my $big = GlmTest::chat_body(content => 'x' x 70000);
$r = $t->post($chat, $big);
is_error($r, 413, 'RequestEntityTooLargeError', 'Request Entity Too Large',
         undef, 'client_max_body_size');

$r = $t->post($chat, $big, chunked => 1);
is_error($r, 413, 'RequestEntityTooLargeError', 'Request Entity Too Large',
         undef, 'client_max_body_size, chunked');

# ---- limit_req 429 and the API key check of conf.d ----

$r = $t->post('/limited', GlmTest::chat_body());
is($r->{status}, 200, 'limit_req: first request passes');
$r = $t->post('/limited', GlmTest::chat_body());
is_error($r, 429, 'RateLimitError', 'Too Many Requests', undef, 'limit_req');
is($r->{headers}{'retry-after'}, '1', 'limit_req: Retry-After');

$r = $t->post('/keyed', GlmTest::chat_body());
is($r->{status}, 401, 'api key: missing is 401');
is($r->{body}, '{"error":"Unauthorized"}', 'api key: vLLM body');
$r = $t->post('/keyed', GlmTest::chat_body(),
              headers => [ 'Authorization: Bearer wrong' ]);
is($r->{status}, 401, 'api key: wrong is 401');
$r = $t->post('/keyed', GlmTest::chat_body(),
              headers => [ 'Authorization: Bearer test-key' ]);
is($r->{status}, 200, 'api key: right one passes');

# ---- read timeout, malformed output: need the fake's switches ----

SKIP: {
    skip 'needs the fake engine', 20 unless $t->fake;

    my $t0 = time();
    $r = $t->post('/slow', GlmTest::chat_body(fake => 'stall'));
    is_error($r, 504, 'GatewayTimeoutError',
             'The engine did not respond in time', undef, 'read timeout');
    ok(time() - $t0 >= 0.9, 'read timeout: after glm_read_timeout');
    ok($t->wait_engine_log(qr/CANCEL chan=\d+ slot=\d+ gen=\d+ active/),
       'read timeout: CANCEL sent');

    $r = $t->post('/slow', GlmTest::chat_body(fake => 'stall', stream => \1));
    is($r->{status}, 200, 'stream read timeout: 200 already sent');
    my @ev = GlmTest::sse_events($r->{body});
    is(scalar @ev, 3, 'stream read timeout: role, error, [DONE]');
    is($ev[1], substr(err_body(504, 'GatewayTimeoutError',
                               'The engine did not respond in time'), 0),
       'stream read timeout: in-band error event');
    is($ev[2], '[DONE]', 'stream read timeout: [DONE]');
    ok($r->{complete}, 'stream read timeout: chunked end');

    $r = $t->post($chat, GlmTest::chat_body(fake => 'bad'));
    is_error($r, 502, 'BadGatewayError',
             'The engine sent a malformed response', undef, 'DATA before HEAD');

    # a record of an unknown type: the connection is dropped, then remade
    $r = $t->post($chat, GlmTest::chat_body(fake => 'garbage'));
    is_error($r, 503, 'ServiceUnavailableError', 'engine process exited',
             undef, 'broken ring');
    like($t->error_log, qr/invalid record in the output ring/,
         'broken ring: logged');
    ok($t->wait_health(200), 'broken ring: worker reattached');
}

$t->finish;

# ---- the submit ring: too small for a body, full for a while ----

SKIP: {
    skip 'needs the fake engine', 1 unless $t->fake;

    my $u = GlmTest->new(engine_args => [ '--submit-size', 4096 ]);
    $u->run(http => "    client_max_body_size 1m;\n", server => <<'END');
        location = /v1/chat/completions {
            glm_submit_timeout 300ms;
            glm_pass chat;
        }
        location = /queue {
            glm_submit_timeout 5s;
            glm_pass chat;
        }
        location = /health { glm_health; }
END

    # 4096-byte ring: a body goes in whole, as records of at most 2032
    # bytes, or gets 413
    $r = $u->post($chat, GlmTest::chat_body(content => 'y' x 4000));
    is_error($r, 413, 'RequestEntityTooLargeError',
             'The request body is larger than the engine accepts', undef,
             'body beyond the submit ring');

    $r = $u->post($chat, GlmTest::chat_body(content => 'y' x 1000));
    is($r->{status}, 200, 'a body that fits one record');

    # SUBMIT + SUBMIT_MORE, cut where the buffer wraps
    for my $n (3000, 3500, 2500, 3700) {
        my $content = join '', map { chr(97 + $_ % 26) } 1 .. $n;
        $r = $u->post($chat, GlmTest::chat_body(content => $content));
        is($r->{json}{choices}[0]{message}{content}, $content,
           "a $n-byte prompt in several records arrives intact");
    }
    my @records = ($u->engine_log =~ /^BODY .* records=(\d+)$/mg)[-4 .. -1];
    ok(!grep({ $_ < 2 } @records), 'each in two records or more');
    ok(grep({ $_ > 2 } @records), 'some cut at the end of the buffer');

    # the engine stops reading: four ~1 KB requests fill the ring, the next
    # one waits for room and then gets 503
    kill 'USR1', $u->engine_pid;
    sleep 0.1;
    my $body = GlmTest::chat_body(content => 'z' x 900);
    my @held = map { $u->stream_open($body) } 1 .. 4;
    sleep 0.2;

    my $t0 = time();
    $r = $u->post($chat, $body);
    is_error($r, 503, 'ServiceUnavailableError', 'engine busy', undef,
             'full ring');
    is($r->{headers}{'retry-after'}, '1', 'full ring: Retry-After');
    ok(time() - $t0 >= 0.25, 'full ring: after glm_submit_timeout');

    # a waiting request goes in, in order, once the engine reads again
    my $q = $u->connect_http;
    print $q GlmTest::build_request(method => 'POST', path => '/queue',
                                    type => 'application/json',
                                    body => $body);
    sleep 0.5;
    kill 'USR1', $u->engine_pid;

    for my $s (@held, $q) {
        my $resp = GlmTest::parse_response(GlmTest::read_until($s, qr/(?!)/, 5));
        is($resp->{status}, 200, 'held request completes');
        close $s;
    }

    $u->finish;
}

# ---- more workers than the engine has channels ----

SKIP: {
    skip 'needs the fake engine', 1 unless $t->fake;

    my $v = GlmTest->new(workers => 2, engine_args => [ '--channels', 1 ]);
    $v->write_conf;
    $v->start_engine;
    $v->start_nginx;

    my $deadline = time() + 5;
    while (time() < $deadline) {
        last if $v->error_log =~ /glm: the engine has no free channel/;
        sleep 0.05;
    }
    like($v->error_log, qr/\[error\].*glm: the engine has no free channel/,
         'no channel: refusal logged');

    # the refused worker answers 503 and keeps asking, quietly
    sleep 1;
    my @refusals = $v->error_log =~ /no free channel/g;
    ok(@refusals >= 2, 'no channel: retried');
    my @errors = $v->error_log =~ /\[error\].*no free channel/g;
    is(scalar @errors, 1, 'no channel: reported once at [error]');

    my %status;
    $status{ $v->get('/health')->{status} }++ for 1 .. 20;
    ok($status{200}, 'no channel: the attached worker is healthy');

    # the channel frees when the attached worker's engine side restarts
    $v->kill_engine('TERM');
    $v->start_engine(args => [ '--channels', 2 ]);
    ok($v->wait_health(200, 10), 'no channel: both attached to a bigger engine');

    $v->finish;
}

done_testing();
