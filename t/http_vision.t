#!/usr/bin/perl
# Images and videos through nginx and the real engine on the tiny GLM-4.5V
# checkpoint: a PNG data: URL streamed and not, a local MP4 under
# --allowed-local-media-path, usage counting the image tokens, prefix
# caching telling images apart by their pixels, and every kind
# of bad input refused with a clear 400 (403 for a path outside the root)
# while the engine keeps serving.  Runs with the real engine only (the
# engine binary is taken from GLM_TEST_ENGINE; the model is glm45v-tiny).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;
use JSON::PP qw(encode_json decode_json);
use MIME::Base64 qw(encode_base64);
use POSIX qw(mkfifo);
use Compress::Zlib qw(crc32);

plan skip_all => 'needs the real engine (GLM_TEST_ENGINE)'
    unless $ENV{GLM_TEST_ENGINE};

my $repo = "$FindBin::Bin/..";
my $fixture = "$repo/t/fixtures/glm45v-tiny";
my ($engine) = $ENV{GLM_TEST_ENGINE} =~ /^(\S+)/;
# the engine's parallel options, when the suite runs a split engine
my $parallel = join ' ', $ENV{GLM_TEST_ENGINE}
    =~ /(--tensor-parallel-size \d+|-tp \d+|--enable-expert-parallel)/g;

my $t = GlmTest->new;
my $media = $t->dir . '/media';
mkdir $media or die "mkdir $media: $!";
my $outside = $t->dir . '/outside';
mkdir $outside or die;

sub slurp { local $/; open my $f, '<:raw', $_[0] or die "$_[0]: $!"; <$f> }
sub spit { open my $f, '>:raw', $_[0] or die "$_[0]: $!"; print $f $_[1]; close $f }

my $png = slurp("$fixture/media/cat.png");
my $jpg = slurp("$fixture/media/tall.jpg");
my $mp4 = slurp("$fixture/media/clip.mp4");
spit("$media/clip.mp4", $mp4);
spit("$media/cat.png", $png);
spit("$outside/secret.png", $png);
symlink("$outside/secret.png", "$media/escape.png") or die;
symlink($outside, "$media/outdir") or die;
mkdir "$media/adir" or die;
mkfifo("$media/fifo.png", 0600) or die "mkfifo: $!";

$t->{engine_cmd} = "$engine serve --model $fixture --socket %SOCKET%"
    . " --allowed-local-media-path $media --max-model-len 2048 $parallel";
$t->run(server => $GlmTest::LOCATIONS);

sub data_url { 'data:' . $_[0] . ';base64,' . encode_base64($_[1], '') }

sub mm_body {
    my ($parts, %o) = @_;
    return encode_json({
        messages => [ { role => 'user', content => $parts } ],
        max_tokens => 8, temperature => 0, %o,
    });
}

my $text_part = { type => 'text', text => 'What is in this picture?' };
my $img = { type => 'image_url', image_url => { url => data_url('image/png', $png) } };

# --- a PNG data: URL, not streamed and streamed: the same greedy answer
my $r = $t->post('/v1/chat/completions', mm_body([ $img, $text_part ]));
is($r->{status}, 200, 'PNG data: URL: 200') or diag($r->{body});
my $answer = $r->{json}{choices}[0]{message}{content} // '';
ok(length $answer, 'PNG data: URL: an answer');
my $with_image = $r->{json}{usage}{prompt_tokens};

my $s = $t->stream_open(mm_body([ $img, $text_part ], stream => JSON::PP::true,
                                stream_options => { include_usage => JSON::PP::true }));
my $raw = GlmTest::read_until($s, qr/data: \[DONE\]/, 60);
my $resp = GlmTest::parse_response($raw);
is($resp->{status}, 200, 'streamed PNG: 200');
is(GlmTest::sse_text($resp->{body}), $answer, 'streamed PNG: same greedy text');
my ($usage) = grep { $_ ne '[DONE]' && /"usage":\{/ } GlmTest::sse_events($resp->{body});
is(decode_json($usage)->{usage}{prompt_tokens}, $with_image,
   'streamed PNG: same prompt_tokens in the usage chunk');

# usage counts the image tokens: the 112x84 PNG is a 6x8 patch grid, 12 LLM
# tokens, plus <|begin_of_image|> and <|end_of_image|> around them
$r = $t->post('/v1/chat/completions', mm_body([ $text_part ]));
is($with_image, $r->{json}{usage}{prompt_tokens} + 2 + 12,
   "prompt_tokens counts the 12 image tokens ($with_image)");

# /tokenize with the same messages gives the ids the model sees
$r = $t->post('/tokenize', encode_json({ messages => [ { role => 'user', content => [ $img, $text_part ] } ] }));
is($r->{json}{count}, $with_image, '/tokenize counts the image tokens as usage does');

# images beyond the context are refused before the next one is decoded
{
    my $big1 = slurp("$repo/t/fixtures/vision/inputs/photo.jpg");    # 1334 tokens
    my $big2 = slurp("$repo/t/fixtures/vision/inputs/screen.png");   # 1323 tokens
    $r = $t->post('/v1/chat/completions', mm_body([
        { type => 'image_url', image_url => { url => data_url('image/jpeg', $big1) } },
        { type => 'image_url', image_url => { url => data_url('image/png', $big2) } },
        $text_part ]));
    is($r->{status}, 400, 'images over the context: 400');
    like($r->{json}{error}{message} // '', qr/2657 tokens, more than the model's context of 2048/,
         '... says how many tokens');
}

# the picture matters: another image, another answer's logits (a tall JPEG)
my $jpeg = { type => 'image_url', image_url => { url => data_url('image/jpeg', $jpg) } };
$r = $t->post('/v1/chat/completions', mm_body([ $jpeg, $text_part ], logprobs => JSON::PP::true));
is($r->{status}, 200, 'JPEG data: URL: 200') or diag($r->{body});

# --- a local MP4 under the allowed root, streamed; and a file:// PNG
my $vid = { type => 'video_url', video_url => { url => "file://$media/clip.mp4" } };
$s = $t->stream_open(mm_body([ $vid, { type => 'text', text => 'Describe the video.' } ],
                             stream => JSON::PP::true));
$raw = GlmTest::read_until($s, qr/data: \[DONE\]/, 60);
$resp = GlmTest::parse_response($raw);
is($resp->{status}, 200, 'local MP4: 200') or diag($raw);
like($resp->{body}, qr/"finish_reason":"(length|stop)"/, 'local MP4: the stream finishes');

# frame sampling per request: the 2 s clip at 4 fps gives 2 frame pairs at the
# default 2 fps, 1 pair at fps 1 or with num_frames 2; a pair is 12 image
# tokens (6x8 grid) + begin/end + its timestamp
my @vq = ([ $vid, { type => 'text', text => 'Describe the video.' } ]);
my $v2 = $t->post('/v1/chat/completions', mm_body(@vq));
my $v1 = $t->post('/v1/chat/completions', mm_body(@vq, mm_processor_kwargs => { fps => 1 }));
my $vn = $t->post('/v1/chat/completions', mm_body(@vq, mm_processor_kwargs => { num_frames => 2 }));
is($v2->{json}{usage}{prompt_tokens} - $v1->{json}{usage}{prompt_tokens}, 15,
   'mm_processor_kwargs.fps 1: one frame pair fewer (15 tokens)');
is($vn->{json}{usage}{prompt_tokens}, $v1->{json}{usage}{prompt_tokens},
   'mm_processor_kwargs.num_frames 2: one pair');

# n = 2 choices share one encoding of the image
$r = $t->post('/v1/chat/completions', mm_body([ $img, $text_part ], n => 2));
is(scalar @{ $r->{json}{choices} // [] }, 2, 'n=2 with an image: two choices');
is($r->{json}{choices}[1]{message}{content}, $answer, 'n=2: greedy choices agree');

# prefix caching names images by their pixels: the same picture by another
# URL takes every full 16-token block it can (at most prompt_tokens - 1,
# vLLM's rule) and answers exactly as when computed; another picture behind
# the same text takes only the blocks before its first image token
{
    my $image_token = decode_json(slurp("$fixture/config.json"))->{image_token_id};
    my $lead = { type => 'text', text => 'Look closely at the following picture, then say'
                 . ' in a few plain words what you see in it, and nothing else at all.' };
    my $counters = sub {
        my $m = $t->get('/metrics')->{body};
        return map { $m =~ /^vllm:prefix_cache_${_}_total\{[^}]*\} (\d+)$/m ? $1 : -1 }
            qw(queries hits);
    };
    my $file_png = { type => 'image_url', image_url => { url => "file://$media/cat.png" } };
    my @before = $counters->();
    my ($want_q, $want_h, @got) = (0, 0);
    for my $case ([ $img, 'none' ], [ $file_png, 'all' ], [ $jpeg, 'text' ]) {
        my ($part, $share) = @$case;
        my @msgs = ({ role => 'user', content => [ $lead, $part, $text_part ] });
        my $ids = $t->post('/tokenize', encode_json({ messages => \@msgs }))->{json}{tokens};
        my ($first_image) = grep { $ids->[$_] == $image_token } 0 .. $#$ids;
        push @got, $t->post('/v1/chat/completions',
                            mm_body([ $lead, $part, $text_part ], logprobs => JSON::PP::true,
                                    top_logprobs => 3));
        $want_q += @$ids;
        $want_h += $share eq 'all' ? int((@$ids - 1) / 16) * 16
                 : $share eq 'text' ? int($first_image / 16) * 16 : 0;
    }
    my @after = $counters->();
    my $canon = JSON::PP->new->canonical;
    is($canon->encode($got[1]{json}{choices}), $canon->encode($got[0]{json}{choices}),
       'prefix cache: the same PNG by file:// answers as by data: URL, logprobs too');
    is($after[0] - $before[0], $want_q, "prefix cache: queries count every prompt token ($want_q)");
    is($after[1] - $before[1], $want_h,
       "prefix cache: hits are all blocks for the same pixels, the text blocks for another"
       . " image ($want_h)");
}

# a client that leaves while its image is being decoded costs nothing
{
    my $c = $t->stream_open(mm_body([ $img, $text_part ], stream => JSON::PP::true));
    close $c;
}

$r = $t->post('/v1/chat/completions',
              mm_body([ { type => 'image_url', image_url => { url => "file://$media/cat.png" } },
                        $text_part ]));
is($r->{status}, 200, 'file:// PNG: 200');
is($r->{json}{choices}[0]{message}{content}, $answer, 'file:// PNG: same answer as data:');
$r = $t->post('/v1/chat/completions', mm_body([ { image_url => "$media/cat.png" }, $text_part ]));
is($r->{status}, 200, 'shorthand part with a plain path: 200');

# --- bad input: each a clean error for that request only
my $corrupt = $png;
substr($corrupt, 60, 40) = "\xff" x 40;
# a PNG whose IHDR (width, height at byte 16, CRC after its 13 data bytes)
# claims another size, with a valid CRC so that only the size is wrong
sub png_claiming {
    my ($w, $h) = @_;
    my $p = $png;
    substr($p, 16, 8) = pack('NN', $w, $h);
    substr($p, 29, 4) = pack('N', crc32(substr($p, 12, 17)));
    return $p;
}
my $lying = png_claiming(100000, 100000);
my $zero = png_claiming(0, 0);
my @bad = (
    [ 'corrupt PNG', data_url('image/png', $corrupt), 400 ],
    [ 'truncated PNG', data_url('image/png', substr($png, 0, length($png) / 2)), 400 ],
    [ 'truncated JPEG', data_url('image/jpeg', substr($jpg, 0, 300)), 400 ],
    [ 'empty data', 'data:image/png;base64,', 400 ],
    [ 'wrong magic', data_url('image/png', "GIF00" . ('x' x 100)), 400 ],
    [ 'zero-size header', data_url('image/png', $zero), 400 ],
    [ 'lying header (bomb)', data_url('image/png', $lying), 400, qr/limit/ ],
    [ 'not base64', 'data:image/png,rawbytes', 400, qr/base64/ ],
    [ 'bad base64', 'data:image/png;base64,@@@@', 400, qr/base64/ ],
    [ 'a directory', "file://$media/adir", 400, qr/directory/ ],
    [ 'a fifo', "file://$media/fifo.png", 400, qr/fifo/ ],
    [ 'outside the root', "file://$outside/secret.png", 403, qr/allowed-local-media-path/ ],
    [ 'dot-dot escape', "file://$media/../outside/secret.png", 403 ],
    # no oracle: a missing file outside the root answers as an existing one
    [ 'missing outside the root', "file://$outside/nope.png", 403,
      qr/allowed-local-media-path/ ],
    [ 'missing behind a dot-dot escape', "file://$media/../outside/nope.png", 403 ],
    [ 'missing behind a symlinked directory', "file://$media/outdir/nope.png", 403 ],
    [ 'symlink escape', "file://$media/escape.png", 403 ],
    [ 'missing file', "file://$media/nope.png", 400, qr/No such file/ ],
    [ 'relative path', 'file://media/cat.png', 400, qr/absolute/ ],
    [ 'unknown scheme', 'ftp://example.com/x.png', 400, qr/scheme/ ],
    [ 'http without glm_media_fetch', 'http://example.com/x.png', 400, qr/glm_media_fetch/ ],
);
for my $b (@bad) {
    my ($name, $url, $status, $re) = @$b;
    $r = $t->post('/v1/chat/completions',
                  mm_body([ { type => 'image_url', image_url => { url => $url } }, $text_part ]));
    is($r->{status}, $status, "$name: $status");
    my $e = $r->{json}{error} // {};
    ok(defined $e->{message} && defined $e->{type} && exists $e->{param}
       && $e->{code} == $status, "$name: OpenAI-shaped error")
        or diag($r->{body});
    like($e->{message} // '', $re, "$name: the message says why") if $re;
}
# what cannot be decoded is never echoed: it may be a page nginx fetched
# from a URL the client cannot read itself
$r = $t->post('/v1/chat/completions',
              mm_body([ { type => 'image_url',
                          image_url => { url => data_url('image/png', 'TOP-SECRET: 42') } },
                        $text_part ]));
is($r->{status}, 400, 'undecodable bytes: 400');
unlike($r->{body}, qr/TOP|SECRET|54 4f|544f/i, 'undecodable bytes: not echoed')
    or diag($r->{body});
$r = $t->post('/v1/chat/completions',
              mm_body([ { type => 'video_url', video_url => { url => data_url('video/mp4', substr($mp4, 0, 500)) } },
                        $text_part ]));
is($r->{status}, 400, 'truncated MP4: 400') or diag($r->{body});
$r = $t->post('/v1/chat/completions',
              mm_body([ $img, $text_part ], mm_processor_kwargs => { size => 3 }));
is($r->{status}, 400, 'unknown mm_processor_kwargs: 400');
like($r->{json}{error}{message} // '', qr/mm_processor_kwargs\.size/, 'names the key');

# the engine kept serving throughout
$r = $t->post('/v1/chat/completions', mm_body([ $img, $text_part ]));
is($r->{status}, 200, 'after the bad inputs: 200');
is($r->{json}{choices}[0]{message}{content}, $answer, 'after the bad inputs: same answer');
ok(kill(0, $t->engine_pid), 'the engine is alive');

# 24 clients at once, images, a video and text mixed, some leaving early:
# every answer that completes equals the one-at-a-time answer
{
    my $text_only = $t->post('/v1/chat/completions', mm_body([ $text_part ]));
    my $want_text = $text_only->{json}{choices}[0]{message}{content};
    my (@socks, @kind);
    for my $i (0 .. 23) {
        my $k = $i % 4;
        my $parts = $k == 0 ? [ $img, $text_part ] : $k == 1 ? [ $text_part ]
                  : $k == 2 ? [ { type => 'image_url', image_url => { url => "file://$media/cat.png" } }, $text_part ]
                  : [ $vid, { type => 'text', text => 'Describe the video.' } ];
        push @socks, $t->stream_open(mm_body($parts, stream => JSON::PP::true));
        push @kind, $k;
    }
    close $socks[$_] for (5, 11);                  # two clients leave at once
    my ($same, $done) = (0, 0);
    for my $i (0 .. 23) {
        next if $i == 5 || $i == 11;
        my $raw = GlmTest::read_until($socks[$i], qr/data: \[DONE\]/, 120);
        my $resp = GlmTest::parse_response($raw);
        $done++ if $raw =~ /data: \[DONE\]/;
        my $text = GlmTest::sse_text($resp->{body});
        $same++ if ($kind[$i] == 0 || $kind[$i] == 2) ? $text eq $answer
                 : $kind[$i] == 1 ? $text eq $want_text : length $text;
    }
    is($done, 22, '22 concurrent streams finished');
    is($same, 22, 'each equals its one-at-a-time answer');
}

# limits, each a 400 naming it: engines started with small ones
my $base_cmd = $t->{engine_cmd};
sub restart_with {
    $t->kill_engine;
    $t->{engine_cmd} = "$base_cmd @_";
    $t->start_engine;
    $t->wait_health(200);
}
sub one_part {
    my ($part) = @_;
    return $t->post('/v1/chat/completions', mm_body([ $part, $text_part ]));
}
restart_with('--limit-media-bytes 9000 --limit-media-pixels 10000 --limit-video-frames 2');
$r = one_part($img);                                     # 9575 bytes
is($r->{status}, 400, 'over the encoded-bytes limit: 400');
like($r->{json}{error}{message} // '', qr/9575 bytes, over the limit of 9000/, '... names it');
$r = one_part($jpeg);                                    # 70x150 = 10500 pixels
is($r->{status}, 400, 'over the pixel limit: 400');
like($r->{json}{error}{message} // '', qr/over the limit of 10000/, '... names it');
$r = one_part($vid);                                     # 4 frames at 2 fps
is($r->{status}, 400, 'over the frame limit: 400');
like($r->{json}{error}{message} // '', qr/frames to keep, over the limit of 2/, '... names it');
restart_with('--limit-video-seconds 1');
$r = one_part($vid);
is($r->{status}, 400, 'over the duration limit: 400');
like($r->{json}{error}{message} // '', qr/s long, over the limit of 1 s/, '... names it');
$r = one_part($img);
is($r->{status}, 200, 'images still served');

$t->finish;
done_testing;
