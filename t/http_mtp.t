#!/usr/bin/perl
# MTP speculative decoding through nginx: an engine started with
# --speculative-config '{"method":"mtp","num_speculative_tokens":1}' answers
# a greedy chat and a seeded sampled chat, streamed and not, with the same
# text as an engine without it, and counts its drafts in /metrics as vLLM
# names them.  A bad --speculative-config stops the engine at start with a
# message naming the field.  Skipped with the fake engine.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;

my $plain = GlmTest->new;
plan skip_all => 'needs the real engine (GLM_TEST_ENGINE)' if $plain->fake;

my @requests = (
    [ 'greedy', content => 'Tell me about nginx.', max_tokens => 24, temperature => 0 ],
    [ 'seeded', content => 'Write a short poem.', max_tokens => 24, temperature => 1,
      seed => 42 ],
);

sub answers {
    my ($t) = @_;
    my %a;
    for my $q (@requests) {
        my ($name, @body) = @$q;
        my $r = $t->post('/v1/chat/completions', GlmTest::chat_body(@body));
        is($r->{status}, 200, "$name chat: 200");
        my $j = eval { decode_json($r->{body}) } // {};
        $a{$name} = $j->{choices}[0]{message}{content};
        $r = $t->post('/v1/chat/completions', GlmTest::chat_body(@body, stream => \1));
        $a{"$name streamed"} = GlmTest::sse_text($r->{body});
    }
    return \%a;
}

$plain->run(server => $GlmTest::LOCATIONS);
my $want = answers($plain);
$plain->stop;

my $spec = GlmTest->new;
$spec->{engine_cmd} .= q( --speculative-config '{"method": "mtp", "num_speculative_tokens": 1}');
$spec->run(server => $GlmTest::LOCATIONS);
my $got = answers($spec);
for my $k (sort keys %$want) {
    ok(defined $want->{$k} && length $want->{$k}, "$k: some text");
    is($got->{$k}, $want->{$k}, "$k: the same text with MTP as without");
}
my $m = $spec->get('/metrics');
my ($drafts) = $m->{body} =~ /^vllm:spec_decode_num_drafts_total\{[^}]*\} (\d+)$/m;
my ($acc) = $m->{body} =~ /^vllm:spec_decode_num_accepted_tokens_total\{[^}]*\} (\d+)$/m;
ok(defined $drafts && $drafts > 0, "/metrics counts drafts (" . ($drafts // 'none') . ')');
ok(defined $acc && $acc <= $drafts, "/metrics counts accepted drafts (" . ($acc // 'none') . ')');
$spec->stop;

# a bad configuration stops the engine at start, naming the field
my $bad = GlmTest->new;
$bad->{engine_cmd} .= q( --speculative-config '{"method": "ngram"}');
eval { $bad->run(server => $GlmTest::LOCATIONS) };
like($@, qr/method "ngram" is not supported; "mtp" is/, 'an unsupported method: a clear start-up error');
$bad->stop;

done_testing;
