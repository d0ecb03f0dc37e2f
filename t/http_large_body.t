#!/usr/bin/perl
# Bodies of megabytes: read in turns of the event loop (unbuffered, never a
# temp file), checked on the worker's intake thread, written into the submit
# ring in turns.  What a client sees must be what it saw with a body read
# whole: every byte arrives, in its own request; the module's own errors
# (invalid JSON, an unknown model) come from the thread as they came from
# the loop; several large bodies at once do not mix; a client that leaves
# half-way harms nobody; and with glm_intake_threads 0 the same happens on
# the loop.  The fake engine echoes the last message's content.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;

# the fake's submit ring is 1 MiB unless told (the engine's, 64 MiB)
my $t = GlmTest->new(engine_args => ['--submit-size', 16 * 1024 * 1024]);

# a real model's context is far shorter than these prompts: its 400 says
# that the engine got the body and counted its tokens
my $ok = $t->fake ? 200 : 400;

sub words { my ($tag, $n) = @_; join ' ', map { "$tag$_" } 1 .. $n }

sub large_cases {
    my ($what) = @_;
    my $content = words('w', 400_000);             # about 3 MB
    my $body = GlmTest::chat_body(content => $content);
    ok(length $body > 2 * 1024 * 1024, "$what: a body of "
       . length($body) . ' bytes');

    my $r = $t->post('/v1/chat/completions', $body);
    is($r->{status}, $ok, "$what: $ok");
    ok(($r->{json}{choices}[0]{message}{content} // '') eq $content,
       "$what: arrived intact") if $t->fake;

    $r = $t->post('/v1/chat/completions', $body, chunked => 1);
    is($r->{status}, $ok, "$what, chunked: $ok");
    ok(($r->{json}{choices}[0]{message}{content} // '') eq $content,
       "$what, chunked: arrived intact") if $t->fake;

    # the module's checks, now made off the loop, answer as before
    my $bad = '{"messages": [' . ('{"role": "user", "content": "x"}, ' x 4000)
              . '{"role": }]}';
    ok(length $bad > 64 * 1024, "$what: invalid JSON beyond 64 KB");
    $r = $t->post('/v1/chat/completions', $bad);
    is($r->{status}, 400, "$what: invalid JSON: 400");
    like($r->{json}{error}{message} // '',
         qr/^Invalid JSON in the request body at byte \d+/,
         "$what: invalid JSON: the module's message");

    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => $content,
                                     model => 'no-such-model'));
    is($r->{status}, 404, "$what: unknown model: 404");
    is($r->{json}{error}{param}, 'model', "$what: unknown model: param");
}

sub concurrent_cases {
    my ($what) = @_;
    my (@s, @content);

    for my $i (0 .. 3) {
        $content[$i] = words("c${i}_", 150_000);     # about 1.3 MB each
        push @s, $t->connect_http;
    }

    # all four bodies go out interleaved, 64 KB at a time
    my @req = map {
        GlmTest::build_request(method => 'POST',
                               path => '/v1/chat/completions',
                               type => 'application/json',
                               body => GlmTest::chat_body(
                                           content => $content[$_]))
    } 0 .. 3;
    my @off = (0) x 4;
    my $left = 4;
    while ($left) {
        $left = 0;
        for my $i (0 .. 3) {
            next if $off[$i] >= length $req[$i];
            my $n = syswrite($s[$i], $req[$i], 65536, $off[$i]);
            die "write: $!" unless defined $n;
            $off[$i] += $n;
            $left++ if $off[$i] < length $req[$i];
        }
    }

    for my $i (0 .. 3) {
        my $raw = GlmTest::read_until($s[$i], qr/\A(?!)/, 60);
        close $s[$i];
        my $r = GlmTest::parse_response($raw);
        is($r->{status}, $ok, "$what: body $i: $ok");
        ok(($r->{json}{choices}[0]{message}{content} // '') eq $content[$i],
           "$what: body $i: its own content, intact") if $t->fake;
    }
}

sub abandoned_case {
    my ($what) = @_;

    # half of a 2 MB body, then the client is gone
    my $req = GlmTest::build_request(method => 'POST',
                                     path => '/v1/chat/completions',
                                     type => 'application/json',
                                     body => GlmTest::chat_body(
                                                 content => words('h', 250_000)));
    my $s = $t->connect_http;
    print $s substr($req, 0, length($req) / 2);
    close $s;

    my $r = $t->post('/v1/chat/completions',
                     GlmTest::chat_body(content => 'after the one that left'));
    is($r->{status}, 200, "$what: the next request: 200");
    is($r->{json}{choices}[0]{message}{content}, 'after the one that left',
       "$what: the next request: answered") if $t->fake;
}

my $server = <<"END";
        client_max_body_size 16m;
$GlmTest::LOCATIONS
END

$t->run(server => $server);

large_cases('intake thread');
concurrent_cases('four at once');
abandoned_case('client left mid-body');

my $log = $t->error_log;
unlike($log, qr/client request body is buffered to a temporary/,
       'no body went through a temp file');
unlike($log, qr/exited on signal|\[alert\]/, 'no worker crashed');

$t->stop;

# the same on the event loop: no intake thread
$t->run(server => $server,
        http => "    glm_intake_threads 0;\n");

large_cases('on the loop');
abandoned_case('on the loop, client left mid-body');
unlike($t->error_log, qr/exited on signal|\[alert\]/,
       'on the loop: no worker crashed');

$t->finish;
done_testing();
