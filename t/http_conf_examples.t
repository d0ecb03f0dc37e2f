#!/usr/bin/perl
# The example configurations of conf.d/ run as written, with only what a
# test must change (paths, ports, the worker user, certificates): the API
# answers, limit_req's 429 and the API key's 401 have the documented bodies,
# TLS with HTTP/2 streams, the media fetch location refuses what its
# SSRF guard names.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use File::Copy qw(copy);
use GlmTest;
use JSON::PP;
use Test::More;

my $confd = "$GlmTest::REPO/conf.d";

# conf.d/NAME with the machine-specific parts pointed into the test's prefix
sub localize {
    my ($t, $name, %port) = @_;
    my $d = $t->dir;
    my $text = GlmTest::read_file("$confd/$name");
    my $user = '';

    if ($> == 0) {
        $user = 'user nobody ' . (getgrnam('nogroup') ? 'nogroup' : 'nobody') . ';';
    }

    for my $f (glob "$confd/*.conf") {
        copy($f, $d . '/' . ($f =~ s{.*/}{}r)) or die "copy $f: $!";
    }
    copy('/etc/nginx/mime.types', "$d/mime.types") or die "mime.types: $!";

    my $module = $ENV{GLM_TEST_MODULE}
                 || "$GlmTest::REPO/build/nginx/ngx_http_glm_module.so";
    my $temps = join '', map { "    ${_}_temp_path $d/$_;\n" }
                         qw(client_body proxy fastcgi uwsgi scgi);

    $text =~ s{^load_module .*$}{load_module $module;\ndaemon off;}m;
    $text =~ s{^user www-data;$}{$user}m;
    $text =~ s{^pid .*$}{pid $d/nginx.pid;}m;
    $text =~ s{^error_log .*$}{error_log $d/error.log info;}m;
    $text =~ s{access_log \S+;}{access_log $d/access.log;\n$temps}g;
    $text =~ s{glm_engine unix:\S+;}{glm_engine unix:$d/engine.sock;};
    $text =~ s{^\s*listen \[::\].*\n}{}mg;
    $text =~ s{listen 8080;}{listen 127.0.0.1:$port{http};}g;
    $text =~ s{listen 80;}{listen 127.0.0.1:$port{http};}g;
    $text =~ s{listen 443 }{listen 127.0.0.1:$port{https} }g;
    $text =~ s{/etc/ssl/glm/fullchain.pem}{$d/cert.pem}g;
    $text =~ s{/etc/ssl/glm/privkey.pem}{$d/key.pem}g;
    $text =~ s{proxy_cache_path \S+}{proxy_cache_path $d/media_cache}g;
    return $text;
}

# every status nginx produces answers the OpenAI JSON error of that status
sub is_json_error {
    my ($r, $status, $type, $message, $name) = @_;
    is($r->{status}, $status, "$name: $status");
    is($r->{headers}{'content-type'}, 'application/json', "$name: json");
    is_deeply($r->{json}, { error => { message => $message, type => $type,
                                       param => undef, code => $status } },
              "$name: OpenAI-shaped body");
}

# statuses nginx answers before or instead of the API; some before it has
# a URI (414, a bad request line), which a named location cannot take
sub nginx_errors {
    my ($t, $name) = @_;
    my $raw = sub { GlmTest::parse_response($t->http($_[0])) };

    is_json_error($t->get('/v1/nothing-here'), 404, 'NotFoundError',
                  'Not Found', "$name: unknown /v1 path");
    is_json_error($t->request(method => 'DELETE', path => '/v1/models'), 405,
                  'MethodNotAllowedError', 'Method Not Allowed',
                  "$name: DELETE /v1/models");
    is_json_error($t->request(method => 'POST', path => '/v1/chat/completions',
                              type => 'application/json',
                              headers => [ 'Content-Length: 999999999' ]),
                  413, 'RequestEntityTooLargeError', 'Request Entity Too Large',
                  "$name: body over client_max_body_size");
    is_json_error($t->get('/v1/' . ('a' x 20000)), 414,
                  'RequestURITooLongError', 'Request-URI Too Large',
                  "$name: huge URI");
    is_json_error($t->get('/v1/models', headers => [ 'X-Big: ' . ('a' x 20000) ]),
                  400, 'BadRequestError', 'Bad Request',
                  "$name: huge header (494)");
    is_json_error($raw->("GARBAGE\r\n\r\n"), 400, 'BadRequestError',
                  'Bad Request', "$name: bad request line");
    is_json_error($t->get('/v1/models', headers => [ 'Host: again' ]), 400,
                  'BadRequestError', 'Bad Request', "$name: two Hosts");
    is_json_error($t->request(method => 'POST', path => '/v1/chat/completions',
                              headers => [ 'Transfer-Encoding: gzip' ]),
                  501, 'NotImplementedError', 'Not Implemented',
                  "$name: unknown Transfer-Encoding");
}

# ---- glm.conf ----

{
    my $t = GlmTest->new;
    $t->run(conf => localize($t, 'glm.conf', http => $t->port));

    my $r = $t->post('/v1/chat/completions',
                     GlmTest::chat_body(content => 'plain config'));
    is($r->{status}, 200, 'glm.conf: chat');
    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => 'x', stream => \1));
    is((GlmTest::sse_events($r->{body}))[-1], '[DONE]', 'glm.conf: stream');
    is($t->get('/v1/models')->{status}, 200, 'glm.conf: models');
    is($t->get('/metrics')->{status}, 200, 'glm.conf: metrics from localhost');

    $r = $t->post('/health', '');
    is($r->{status}, 405, 'glm.conf: POST /health is 405');
    is($r->{body}, '{"error":{"message":"Method Not Allowed",'
                   . '"type":"MethodNotAllowedError","param":null,'
                   . '"code":405}}', 'glm.conf: ... as JSON via error_page');

    nginx_errors($t, 'glm.conf');

    # /detokenize has a limit of its own (2m), /tokenize the server's (32m)
    is_json_error($t->request(method => 'POST', path => '/detokenize',
                              type => 'application/json',
                              headers => [ 'Content-Length: 3000000' ]),
                  413, 'RequestEntityTooLargeError', 'Request Entity Too Large',
                  'glm.conf: /detokenize body over its 2m');
    # (the fake engine's 1m submit ring refuses such bodies on its own)
    unless ($t->fake) {
        my $pad = 'x' x 1_500_000;
        $r = $t->post('/detokenize', qq({"tokens":[1,2],"pad":"$pad"}));
        is($r->{status}, 200, 'glm.conf: /detokenize body under its 2m reaches the engine');
        $r = $t->post('/tokenize', qq({"prompt":"hi","pad":"$pad$pad"}));
        is($r->{status}, 200, 'glm.conf: a 3 MB /tokenize body reaches the engine');
    }

    # the module's own 502 (an engine that breaks the protocol) is JSON too
    $r = $t->post('/v1/chat/completions', GlmTest::chat_body(fake => 'bad'));
    is($r->{status}, 502, 'glm.conf: broken engine, 502') if $t->fake;
    is($r->{json}{error}{type}, 'BadGatewayError', 'glm.conf: ... as JSON')
        if $t->fake;
    $t->finish;

    # no engine at all: the module's 503
    $t = GlmTest->new;
    $t->run(conf => localize($t, 'glm.conf', http => $t->port), engine => 0);
    is_json_error($t->post('/v1/chat/completions', GlmTest::chat_body()), 503,
                  'ServiceUnavailableError', 'engine not available',
                  'glm.conf: no engine');
    $t->finish;
}

# ---- glm-ratelimit.conf ----

{
    my $t = GlmTest->new;
    my $conf = localize($t, 'glm-ratelimit.conf', http => $t->port);

    # The example's 2r/s refills the bucket while a busy machine serves the
    # burst, so how many pass would depend on speed.  At 1r/m (the slowest
    # rate nginx has) the burst of 10 nodelay plus one is exactly what passes
    # unless a minute goes by, and everything after it is refused.
    $conf =~ s{rate=2r/s;}{rate=1r/m;} or die 'glm-ratelimit.conf: no rate=2r/s';
    $t->run(conf => $conf);

    my (@status, $limited);
    for (1 .. 14) {
        my $r = $t->post('/v1/chat/completions', GlmTest::chat_body());
        push @status, $r->{status};
        $limited //= $r if $r->{status} == 429;
    }
    is("@status[0 .. 10]", join(' ', (200) x 11),
       'ratelimit: the request and its burst of 10 pass');
    is("@status[11 .. 13]", '429 429 429', 'ratelimit: then 429');
    is($limited && $limited->{body},
       '{"error":{"message":"Too Many Requests","type":"RateLimitError",'
       . '"param":null,"code":429}}', 'ratelimit: OpenAI-shaped body');
    is($limited && $limited->{headers}{'content-type'}, 'application/json',
       'ratelimit: json');
    is($limited && $limited->{headers}{'retry-after'}, '1',
       'ratelimit: Retry-After');

    # its chat location once had an error_page of its own, which left every
    # other status there (413 above all) to nginx's HTML
    nginx_errors($t, 'ratelimit');
    $t->finish;
}

# ---- glm-apikey.conf ----

{
    my $t = GlmTest->new;
    $t->run(conf => localize($t, 'glm-apikey.conf', http => $t->port));
    my $chat = GlmTest::chat_body();

    my $r = $t->post('/v1/chat/completions', $chat);
    is($r->{status}, 401, 'apikey: no key, 401');
    is($r->{body}, '{"error":"Unauthorized"}', 'apikey: vLLM body');
    is($r->{headers}{'content-type'}, 'application/json', 'apikey: json');

    $r = $t->post('/v1/chat/completions', $chat,
                  headers => [ 'Authorization: Bearer sk-wrong' ]);
    is($r->{status}, 401, 'apikey: wrong key, 401');

    $r = $t->get('/v1/nothing-here');
    is($r->{status}, 401, 'apikey: unknown /v1 path, 401 first');

    for my $key ('sk-change-me', 'sk-second-key') {
        $r = $t->post('/v1/chat/completions', $chat,
                      headers => [ "Authorization: Bearer $key" ]);
        is($r->{status}, 200, "apikey: $key accepted");
    }

    is($t->get('/health')->{status}, 200, 'apikey: /health open');
    is($t->post('/tokenize', { prompt => 'x' })->{status}, 200,
       'apikey: /tokenize open');
    $t->finish;
}

# ---- glm-media.conf ----

{
    my $t = GlmTest->new;
    my $port = $t->port;
    $t->run(conf => localize($t, 'glm-media.conf', http => $port));

    sub media_chat {
        my ($t, $url) = @_;
        return $t->post('/v1/chat/completions', {
            messages => [ { role => 'user', content => [
                { type => 'text', text => 'what is it?' },
                { type => 'image_url', image_url => { url => $url } } ] } ],
            max_tokens => 4,
        });
    }

    # no DNS here: only the guard's refusals can be shown, and they need none
    for my $url ("http://127.0.0.1:$port/metrics", 'http://LOCALHOST/x.png',
                 'http://[::1]:8080/x', 'https://169.254.169.254',
                 'http://10.0.0.1:80/a?b=1')
    {
        my $r = media_chat($t, $url);
        is($r->{status}, 400, "media: $url refused");
        is($r->{json}{error}{message}, "fetching $url failed: 403 Forbidden",
           "media: $url, the message");
    }

    my $r = media_chat($t, 'data:image/png;base64,iVBORw0KGgo=');
    isnt($r->{status}, 403, 'media: a data: URL is not fetched');
    is($r->{status}, 200, 'media: data: URL answered') if $t->fake;
    is($t->get('/_glm_media')->{status}, 404, 'media: the location is internal');
    $t->finish;
}

# ---- glm-tls.conf ----

SKIP: {
    my $curl = `command -v curl 2>/dev/null`;
    chomp $curl;
    my $openssl = `command -v openssl 2>/dev/null`;
    chomp $openssl;
    skip 'needs curl and openssl', 6 unless $curl && $openssl;

    my $t = GlmTest->new;
    my $https = GlmTest::free_port();
    my $d = $t->dir;
    system("$openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
           . "-subj /CN=api.example.com -keyout $d/key.pem -out $d/cert.pem "
           . ">/dev/null 2>&1") == 0 or skip 'openssl req failed', 6;

    $t->run(conf => localize($t, 'glm-tls.conf', http => $t->port,
                             https => $https));

    my $r = $t->get('/v1/models');
    is($r->{status}, 308, 'tls: plain HTTP redirects');
    like($r->{headers}{location} // '', qr{^https://}, 'tls: to https');

    GlmTest::write_file("$d/body.json",
                        GlmTest::chat_body(content => 'secure words',
                                           stream => \1));
    my $out = `$curl -s -N -k --http2 -D - --resolve api.example.com:$https:127.0.0.1 -H 'Content-Type: application/json' --data-binary \@$d/body.json https://api.example.com:$https/v1/chat/completions`;
    like($out, qr{^HTTP/2 200}, 'tls: HTTP/2 over TLS');
    like($out, qr{strict-transport-security}i, 'tls: HSTS');
    my ($body) = $out =~ /\r\n\r\n(.*)\z/s;
    is((GlmTest::sse_events($body // ''))[-1], '[DONE]', 'tls: stream');
    is(GlmTest::sse_text($body // ''), 'secure words', 'tls: text')
        if $t->fake;
    $t->finish;
}

done_testing();
