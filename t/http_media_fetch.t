#!/usr/bin/perl
# http(s) media URLs fetched by nginx (glm_media_fetch): the engine receives
# each URL as a data: URL of the exact bytes the origin served, typed by
# the origin's Content-Type; several URLs are fetched at once; the client's
# headers never reach the origin; every failure (origin 404, over
# subrequest_output_buffer_size with and without a length, timeout,
# refused connection, a body cut short, a location's own 403) is a 400
# naming the URL; without glm_media_fetch such requests get a 400 saying
# so; other schemes pass untouched.  The origins are a second server{} of
# the same nginx (static files) and a small Perl server for the
# misbehaviours nginx cannot be made to show.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new(workers => 2);
my $dir = $t->dir;
my $origin_port = GlmTest::free_port();
my $bad_port = GlmTest::free_port();
my $closed_port = GlmTest::free_port();     # nobody listens there
my $origin = "http://127.0.0.1:$origin_port";
my $bad = "http://127.0.0.1:$bad_port";

# ---- the static origin's files ----

mkdir "$dir/origin" or die "mkdir: $!";

sub put {
    my ($name, $bytes) = @_;
    open my $fh, '>:raw', "$dir/origin/$name" or die "$name: $!";
    print $fh $bytes;
    close $fh;
    return $bytes;
}

srand(5);
my $png = put('cat.png', "\x89PNG\r\n\x1a\n" . join('', map { chr } 0 .. 255)
                         . join('', map { chr(int rand 256) } 1 .. 70000));
my $jpg = put('dog.jpg', "\xff\xd8\xff" . join('', map { chr(int rand 256) }
                                                   1 .. 5000));
my $mp4 = put('clip.mp4', join('', map { chr(int rand 256) } 1 .. 3001));
my $spaced = put('a b.png', "spaced name");
my $accented = put("caf\xc3\xa9.png", "accented name");
put('big.bin', 'x' x 300_000);            # over the 256k below

# ---- the misbehaving origin ----

sub misbehaving_origin {
    my $l = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                  LocalPort => $bad_port, ReuseAddr => 1)
        or die "listen $bad_port: $!";
    my $pid = fork() // die "fork: $!";
    return $pid if $pid;

    $SIG{CHLD} = 'IGNORE';
    while (my $c = $l->accept) {
        next if fork();             # the parent goes back to accept
        my $req = '';
        while ($req !~ /\r\n\r\n/) {
            sysread($c, $req, 4096, length $req) or _exit(0);
        }
        my ($path) = $req =~ m{^GET (\S+)};
        $path //= '';
        if ($path eq '/stall') {
            sleep 5;
        } elsif ($path eq '/truncated') {
            print $c "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                     . "Content-Length: 1000\r\nConnection: close\r\n\r\n"
                     . ('t' x 10);
        } elsif ($path =~ m{^/chunked/(\d+)$}) {
            my $left = $1;
            print $c "HTTP/1.1 200 OK\r\nContent-Type: image/webp\r\n"
                     . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            while ($left > 0) {
                my $n = $left > 8192 ? 8192 : $left;
                printf $c "%x\r\n%s\r\n", $n, 'c' x $n;
                $left -= $n;
            }
            print $c "0\r\n\r\n";
        } elsif ($path =~ m{^/slow/(\d+)$}) {
            sleep $1 / 1000;
            print $c "HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\n"
                     . "Content-Length: 4\r\nConnection: close\r\n\r\nslow";
        } elsif ($path eq '/big404') {
            print $c "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n"
                     . "Content-Length: 300000\r\nConnection: close\r\n\r\n"
                     . ('n' x 300000);
        } elsif ($path eq '/notype') {
            print $c "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                     . "Connection: close\r\n\r\nabc";
        } elsif ($path eq '/badtype') {
            print $c "HTTP/1.1 200 OK\r\nContent-Type: image/png\"x\r\n"
                     . "Content-Length: 3\r\nConnection: close\r\n\r\nabc";
        } else {
            print $c "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                     . "Connection: close\r\n\r\n";
        }
        close $c;
        _exit(0);
    }
    _exit(0);
}

my $bad_pid = misbehaving_origin();
END { kill 'KILL', $bad_pid if $bad_pid }

# ---- nginx: the API with glm_media_fetch, and the static origin ----

$t->run(http2 => 1, http => <<"END", server => <<"END2");
    # an allowlist: evaluated for each fetch, not once a request
    map \$glm_media_url \$media_allowed {
        default                                   0;
        "~^http://127\.0\.0\.1:[0-9]+/cat\.png\$"  1;
    }

    proxy_cache_path $dir/media_cache keys_zone=glm_media:1m;

    server {
        listen 127.0.0.1:$origin_port;
        server_name origin;
        root $dir/origin;
        default_type application/octet-stream;
        types {
            image/png   png;
            image/jpeg  jpg;
            video/mp4   mp4;
        }
        location = / {
            return 200 "root";
        }
        location = /headers {
            default_type text/plain;
            return 200 "auth=[\$http_authorization] cookie=[\$http_cookie] length=[\$http_content_length] type=[\$http_content_type] method=[\$request_method] host=[\$http_host] uri=[\$request_uri]";
        }
    }
END
        glm_media_fetch /_glm_media;

        location = /v1/chat/completions { glm_pass chat; }
        location = /nofetch {
            glm_media_fetch off;
            glm_pass chat;
        }
        location = /allowlisted {
            glm_media_fetch /_glm_media_allowlisted;
            glm_pass chat;
        }
        location = /cached {
            glm_media_fetch /_glm_media_cached;
            glm_pass chat;
        }
        location = /health { glm_health; }
        location = /show_url { return 200 "[\$glm_media_url]"; }

        location = /_glm_media {
            internal;
            proxy_pass \$glm_media_url;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1s;
            subrequest_output_buffer_size 256k;
        }

        location = /_glm_media_allowlisted {
            internal;
            if (\$media_allowed = 0) {
                return 403;
            }
            proxy_pass \$glm_media_url;
            subrequest_output_buffer_size 256k;
        }

        location = /_glm_media_cached {
            internal;
            proxy_pass \$glm_media_url;
            proxy_cache glm_media;
            proxy_cache_key \$glm_media_url;
            proxy_cache_valid 200 10m;
            subrequest_output_buffer_size 256k;
        }
END2

my ($r, $got, $c);

sub media_body {
    my (@parts) = @_;
    return encode_json({
        messages => [ { role => 'user', content => \@parts } ],
        max_tokens => 5,
        fake => 'echo',
    });
}

# the body the (fake) engine received, decoded
sub received {
    my ($resp) = @_;
    my $content = $resp->{json}{choices}[0]{message}{content} // return undef;
    return eval { decode_json($content) };
}

sub image { return { type => 'image_url', image_url => { url => $_[0] } } }
sub data_url { return "data:$_[0];base64," . encode_base64($_[1], '') }

sub chat_media {
    my ($path, @parts) = @_;
    return $t->post($path, media_body(@parts));
}

sub is_fetch_error {
    my ($resp, $message, $name) = @_;
    is($resp->{status}, 400, "$name: 400");
    is($resp->{json}{error}{type}, 'BadRequestError', "$name: type");
    is($resp->{json}{error}{param}, 'messages', "$name: param");
    is($resp->{json}{error}{code}, 400, "$name: code");
    if (ref $message) {
        like($resp->{json}{error}{message} // '', $message, "$name: message");
    } else {
        is($resp->{json}{error}{message}, $message, "$name: message");
    }
}

# ---- fetched and inlined ----

SKIP: {
    skip 'needs the fake engine (echo)', 17 unless $t->fake;

    $r = chat_media('/v1/chat/completions',
                    { type => 'text', text => 'what is this?' },
                    image("$origin/cat.png"));
    is($r->{status}, 200, 'one image: 200');
    $got = received($r);
    is($got->{messages}[0]{content}[1]{image_url}{url},
       data_url('image/png', $png), 'one image: the exact bytes, typed');
    is_deeply($got->{messages}[0]{content}[0],
              { type => 'text', text => 'what is this?' },
              'one image: the text part untouched');
    is($got->{max_tokens}, 5, 'one image: the rest of the body untouched');

    # every form, several URLs, one of them twice, fetched together
    $r = chat_media('/v1/chat/completions',
                    image("$origin/cat.png"),
                    { image_url => "$origin/dog.jpg" },
                    { type => 'video_url', video_url => { url => "$origin/clip.mp4" } },
                    { video_url => "$bad/chunked/5000" },
                    image("$origin/cat.png"));
    is($r->{status}, 200, 'five parts: 200');
    $got = received($r);
    $c = $got->{messages}[0]{content};
    is($c->[0]{image_url}{url}, data_url('image/png', $png), 'five: png');
    is($c->[1]{image_url}, data_url('image/jpeg', $jpg), 'five: jpeg shorthand');
    is($c->[2]{video_url}{url}, data_url('video/mp4', $mp4), 'five: video');
    is($c->[3]{video_url}, data_url('image/webp', 'c' x 5000),
       'five: chunked response (no length)');
    is($c->[4]{image_url}{url}, $c->[0]{image_url}{url}, 'five: repeated URL');

    # other schemes are the engine's: left as they were
    my $inline = data_url('image/png', "\x89PNG tiny");
    $r = chat_media('/v1/chat/completions', image($inline),
                    image('file:///srv/media/cat.png'),
                    { type => 'text', text => "see $origin/cat.png" });
    $got = received($r);
    is($r->{status}, 200, 'other schemes: 200');
    is_deeply($got->{messages}[0]{content},
              [ image($inline), image('file:///srv/media/cat.png'),
                { type => 'text', text => "see $origin/cat.png" } ],
              'other schemes: untouched');

    # what the origin saw: no client header, no body, a plain GET
    my $resp = $t->request(method => 'POST', path => '/v1/chat/completions',
                           type => 'application/json',
                           headers => [ 'Authorization: Bearer sk-secret',
                                        'Cookie: session=abc' ],
                           body => media_body(image("$origin/headers?x=1")));
    $got = received($resp);
    is($got->{messages}[0]{content}[0]{image_url}{url},
       data_url('text/plain', "auth=[] cookie=[] length=[] type=[] "
                . "method=[GET] host=[127.0.0.1:$origin_port] "
                . "uri=[/headers?x=1]"),
       'the origin sees none of the client\'s headers');

    # what nginx requests: a path when there is none, escapes, no fragment
    $r = chat_media('/v1/chat/completions', image($origin),
                    image("$origin/a b.png#frag"),
                    image("$origin/caf\x{e9}.png"),
                    image("$bad/notype"), image("$bad/badtype"));
    $c = received($r)->{messages}[0]{content};
    is($c->[0]{image_url}{url}, data_url('application/octet-stream', 'root'),
       'no path: /');
    is($c->[1]{image_url}{url}, data_url('image/png', $spaced),
       'space percent-encoded, fragment dropped');
    is($c->[2]{image_url}{url}, data_url('image/png', $accented),
       'non-ASCII percent-encoded');
    is($c->[3]{image_url}{url} . $c->[4]{image_url}{url},
       data_url('application/octet-stream', 'abc') x 2,
       'no or malformed Content-Type: application/octet-stream');
}

# sixteen at once, the slowest first, so that the others end before their
# turn (nginx's postponed subrequests), all in order
SKIP: {
    skip 'needs the fake engine (echo)', 3 unless $t->fake;

    my @parts = (image("$bad/slow/400"),
                 map { image("$origin/dog.jpg?n=$_") } 1 .. 15);
    my $t0 = time();
    $r = chat_media('/v1/chat/completions', @parts);
    is($r->{status}, 200, 'sixteen: 200');
    $c = received($r)->{messages}[0]{content};
    is_deeply([ map { $_->{image_url}{url} } @$c ],
              [ data_url('image/gif', 'slow'),
                (data_url('image/jpeg', $jpg)) x 15 ], 'sixteen: all inlined');
    ok(time() - $t0 < 1.5, sprintf('sixteen: fetched together (%.2fs)',
                                   time() - $t0));
}

# a stream starts once the media are in
{
    my $body = media_body(image("$origin/dog.jpg"));
    $body =~ s/"fake":"echo"/"stream":true/;
    $r = $t->post('/v1/chat/completions', $body);
    is($r->{status}, $t->fake ? 200 : $r->{status}, 'stream: status');
    if ($t->fake) {
        is((GlmTest::sse_events($r->{body}))[-1], '[DONE]', 'stream: [DONE]');
    } else {
        pass('stream: the engine answered');
    }
}

# ---- refusals ----

$r = chat_media('/v1/chat/completions', image("$origin/missing.png"));
is_fetch_error($r, "fetching $origin/missing.png failed: upstream returned 404",
               'origin 404');

$r = chat_media('/v1/chat/completions', image("$origin/cat.png"),
                image("$origin/big.bin"));
is_fetch_error($r, "fetching $origin/big.bin failed: the response is larger "
                   . "than 262144 bytes (subrequest_output_buffer_size)",
               'over the limit, with a length');

$r = chat_media('/v1/chat/completions', image("$bad/chunked/300000"));
is_fetch_error($r, "fetching $bad/chunked/300000 failed: the response is "
                   . "larger than 262144 bytes (subrequest_output_buffer_size)",
               'over the limit, chunked');

# nginx's own check would have dropped the client's connection here
$r = chat_media('/v1/chat/completions', image("$bad/big404"));
is_fetch_error($r, "fetching $bad/big404 failed: upstream returned 404",
               'an error page over the limit');

# ... and the connection goes on after such a refusal
{
    my $s = $t->connect_http;
    my $req = GlmTest::build_request(method => 'POST',
                                     path => '/v1/chat/completions',
                                     type => 'application/json',
                                     body => media_body(image("$origin/big.bin")),
                                     keepalive => 1);
    print $s $req;
    my $buf = GlmTest::read_until($s, qr/subrequest_output_buffer_size\)"/, 5);
    like($buf, qr{^HTTP/1.1 400 }, 'keepalive: the refusal');
    print $s GlmTest::build_request(method => 'GET', path => '/health',
                                    keepalive => 1);
    $buf = GlmTest::read_until($s, qr{HTTP/1.1 200 .*\r\n\r\n}s, 5);
    like($buf, qr{HTTP/1.1 200 }, 'keepalive: the next request on it');
    close $s;
}

$r = chat_media('/v1/chat/completions', image("$bad/stall"));
is_fetch_error($r, "fetching $bad/stall failed: timed out", 'timeout');

$r = chat_media('/v1/chat/completions', image("$bad/truncated"));
is_fetch_error($r, "fetching $bad/truncated failed: the response ended before "
                   . "it was complete", 'cut short');

$r = chat_media('/v1/chat/completions',
                image("http://127.0.0.1:$closed_port/x.png"));
is_fetch_error($r, "fetching http://127.0.0.1:$closed_port/x.png failed: "
                   . "no response from its server", 'connection refused');

# the first failed URL in body order is the one named
$r = chat_media('/v1/chat/completions', image("$origin/cat.png"),
                image("$origin/gone-1.png"), image("$origin/gone-2.png"));
is_fetch_error($r, "fetching $origin/gone-1.png failed: upstream returned 404",
               'first failure named');

# the fetch location's own refusal, judged per URL (the allowed one first:
# a map cached once a request would let the second through)
$r = chat_media('/allowlisted', image("$origin/cat.png"),
                image("$origin/dog.jpg"));
is_fetch_error($r, "fetching $origin/dog.jpg failed: 403 Forbidden",
               'allowlist: refused URL');
SKIP: {
    skip 'needs the fake engine (echo)', 1 unless $t->fake;
    $r = chat_media('/allowlisted', image("$origin/cat.png"));
    is(received($r)->{messages}[0]{content}[0]{image_url}{url},
       data_url('image/png', $png), 'allowlist: allowed URL');
}

# proxy_cache in the fetch location: the second fetch needs no origin
SKIP: {
    skip 'needs the fake engine (echo)', 3 unless $t->fake;
    my $once = put('once.png', "cache me " x 100);
    $r = chat_media('/cached', image("$origin/once.png"));
    is(received($r)->{messages}[0]{content}[0]{image_url}{url},
       data_url('image/png', $once), 'cache: first fetch');
    unlink "$dir/origin/once.png" or die "unlink: $!";
    $r = chat_media('/cached', image("$origin/once.png"));
    is(received($r)->{messages}[0]{content}[0]{image_url}{url},
       data_url('image/png', $once), 'cache: second fetch from the cache');
    is(chat_media('/v1/chat/completions', image("$origin/once.png"))
       ->{status}, 400, 'cache: the origin has it no more');
}

$r = chat_media('/v1/chat/completions', image("http://user:pw\@127.0.0.1/x"));
is_fetch_error($r, "Invalid media URL http://user:pw\@127.0.0.1/x: user names "
                   . "and passwords are not allowed in media URLs",
               'credentials in the URL');

$r = chat_media('/v1/chat/completions',
                map { image("$origin/dog.jpg?n=$_") } 1 .. 17);
is_fetch_error($r, 'At most 16 http(s) media URLs are allowed in a request',
               'seventeen URLs');

$r = chat_media('/nofetch', image("$origin/cat.png"));
is($r->{body}, '{"error":{"message":"http(s) media URLs are not enabled on '
               . 'this server: configure glm_media_fetch (or send the media '
               . 'as a data: URL)","type":"BadRequestError","param":'
               . '"messages","code":400}}', 'glm_media_fetch off: the 400');
is($r->{status}, 400, 'glm_media_fetch off: status');

SKIP: {
    skip 'needs the fake engine (echo)', 1 unless $t->fake;
    my $inline = data_url('image/png', 'x');
    $r = chat_media('/nofetch', image($inline));
    is(received($r)->{messages}[0]{content}[0]{image_url}{url}, $inline,
       'glm_media_fetch off: data: URLs still pass');
}

# the fetch location is not reachable from outside; the variable is empty
# outside a fetch
is($t->get('/_glm_media')->{status}, 404, 'fetch location is internal');
is($t->get('/show_url')->{body}, '[]', '$glm_media_url empty elsewhere');

# the same over HTTP/2, where the subrequests ride the client's h2 stream
SKIP: {
    my $curl = `command -v curl 2>/dev/null`;
    chomp $curl;
    skip 'needs curl with HTTP/2', 3
        unless $curl && `$curl --version` =~ /HTTP2/;

    my $file = "$dir/h2-body.json";
    my $h2 = sub {
        GlmTest::write_file($file, media_body(@_));
        my $out = `$curl -s --http2-prior-knowledge -D - -H 'Content-Type: application/json' --data-binary \@$file http://127.0.0.1:@{[ $t->h2_port ]}/v1/chat/completions`;
        my ($head, $body) = split /\r\n\r\n/, $out, 2;
        return (($head // '') =~ m{^HTTP/2 (\d+)} ? $1 : 0,
                GlmTest::parse_response("HTTP/1.1 200 OK\r\n"
                    . "Content-Type: application/json\r\n\r\n" . ($body // '')));
    };

    my ($status, $resp) = $h2->(image("$origin/cat.png"),
                                image("$origin/dog.jpg"));
    is($status, $t->fake ? 200 : $status, 'h2: status');
    is($t->fake ? received($resp)->{messages}[0]{content}[1]{image_url}{url}
                : 'skip',
       $t->fake ? data_url('image/jpeg', $jpg) : 'skip', 'h2: inlined');
    ($status, $resp) = $h2->(image("$origin/cat.png"),
                             image("$origin/nothing.png"));
    is($resp->{json}{error}{message},
       "fetching $origin/nothing.png failed: upstream returned 404",
       'h2: a failed fetch');
}

# a client that goes away while its media are fetched: noticed at once
# (before the stalled fetch's 1s timeout), whether the stalled fetch is
# the active request or the chat request itself is, the first fetch done
for my $order ([ "$bad/stall", "$origin/cat.png" ],
               [ "$origin/cat.png", "$bad/stall" ]) {
    my $before = () = $t->error_log =~ /prematurely closed connection/g;
    my $s = $t->connect_http;
    print $s GlmTest::build_request(method => 'POST',
                                    path => '/v1/chat/completions',
                                    type => 'application/json',
                                    body => media_body(map { image($_) }
                                                       @$order));
    sleep 0.3;
    close $s;
    sleep 0.3;
    my $after = () = $t->error_log =~ /prematurely closed connection/g;
    ok($after > $before, "client gone during a fetch: noticed "
                         . ($order->[0] =~ /stall/ ? '(fetch active)'
                                                   : '(chat request active)'));
}

# after all that, nginx serves on
$r = $t->post('/v1/chat/completions', GlmTest::chat_body(content => 'still'));
is($r->{status}, 200, 'a plain request afterwards');
is($r->{json}{choices}[0]{message}{content}, 'still',
   'a plain request afterwards: answer') if $t->fake;
unlike($t->error_log, qr/worker process \d+ exited on signal/,
       'no worker crashed');

$t->finish;
done_testing();
