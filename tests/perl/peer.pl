#!/usr/bin/perl
# Interop peer for tests/test_handle_perl.py: a real Perl AnyEvent::Handle.
#
# usage: perl peer.pl PORT PLAN.json
#
# PLAN is a JSON array of frames {"type", "args", "value", "term"} whose values
# are "tagged" (see tag()/untag() below) so that Perl and Python can compare
# types exactly.  The peer connects to 127.0.0.1:PORT, then
#   1. writes every frame of the plan itself (Perl encodes, Python decodes);
#   2. reads every frame of the plan as Python sends it, prints what it
#      decoded (tagged, one JSON object per line) to stdout, and writes the
#      decoded value straight back with the same frame type (an echo);
#   3. exits 0 at EOF; a handle error exits 2, data beyond the plan exits 3.

use strict;
use warnings;
use AnyEvent;
use AnyEvent::Handle;
use AnyEvent::Socket;
use B ();
use CBOR::XS ();
use Digest::MD5 ();
use JSON::XS ();
use Types::Serialiser ();

alarm 60;    # a broken exchange must never hang the test run
binmode STDOUT;
$| = 1;

my ($port, $plan_file) = @ARGV;
my $plan = do {
   open my $fh, "<:raw", $plan_file or die "$plan_file: $!";
   local $/;
   JSON::XS->new->utf8->decode (<$fh>)
};
my $report = JSON::XS->new->utf8->canonical;

# Bytes up to this size are reported in hex, longer ones as [length, md5].
my $HEX_MAX = 64;

sub tag_bytes {
   my ($s) = @_;
   length $s <= $HEX_MAX
      ? { b  => unpack "H*", $s }
      : { bd => [length $s, Digest::MD5::md5_hex ($s)] }
}

# A decoded Perl value as an exactly comparable JSON structure.  $text: the
# value came from JSON, where every string is text (JSON::XS leaves ASCII
# strings without the utf8 flag, so the flag cannot tell).
sub tag {
   my ($v, $text) = @_;
   return undef unless defined $v;
   return { t => $v ? JSON::XS::true : JSON::XS::false } if Types::Serialiser::is_bool ($v);
   return [map tag ($_, $text), @$v] if ref $v eq "ARRAY";
   return { m => [map [$_, tag ($v->{$_}, $text)], sort keys %$v] } if ref $v eq "HASH";
   die "cannot tag " . ref $v if ref $v;
   my $flags = B::svref_2object (\$v)->FLAGS;
   if ($flags & B::SVp_POK) {
      return $text || utf8::is_utf8 ($v) ? { s => $v } : tag_bytes ($v);
   }
   return { f => unpack "H*", pack "d>", $v } if $flags & B::SVp_NOK;
   return { i => "$v" } if $flags & B::SVp_IOK;
   die "cannot tag scalar with flags $flags";
}

# The Perl value a tagged structure stands for.
sub untag {
   my ($t) = @_;
   return undef unless defined $t;
   return [map untag ($_), @$t] if ref $t eq "ARRAY";
   my ($kind, $x) = %$t;
   return $x ? Types::Serialiser::true : Types::Serialiser::false if $kind eq "t";
   return 0 + $x if $kind eq "i";
   return unpack "d>", pack "H*", $x if $kind eq "f";
   if ($kind eq "s") { my $s = $x; utf8::upgrade $s; return $s }    # a text string
   return pack "H*", $x if $kind eq "b";
   return { map +($_->[0] => untag ($_->[1])), @$x } if $kind eq "m";
   die "cannot untag $kind";
}

# The argument list a frame's type takes after its name (line eol, packstring format).
sub type_args {
   my ($frame) = @_;
   my $a = $frame->{args} || {};
   return (qr/$a->{eol_re}/) if defined $a->{eol_re};
   return (pack "H*", $a->{eol}) if defined $a->{eol};
   return ($a->{format}) if defined $a->{format};
   ()
}

sub send_frame {
   my ($hdl, $frame, $value) = @_;
   if ($frame->{type} eq "line") {
      $hdl->push_write ($value . pack "H*", $frame->{term});
   } else {
      $hdl->push_write ($frame->{type} => type_args ($frame), $value);
   }
}

my $done = AE::cv;
my $hdl;

my $connecting = tcp_connect "127.0.0.1", $port, sub {
   my ($fh) = @_ or die "connect: $!";
   $hdl = AnyEvent::Handle->new (
      fh       => $fh,
      cbor     => CBOR::XS->new->text_keys,
      on_error => sub { print STDERR "peer error: $_[2]\n"; exit 2 },
      # keeps reading after the last frame, so that EOF is seen
      on_read  => sub { print STDERR "peer: unexpected data\n"; exit 3 },
      on_eof   => sub { $done->send },
   );

   send_frame ($hdl, $_, untag ($_->{value})) for @$plan;

   for my $i (0 .. $#$plan) {
      my $frame = $plan->[$i];
      $hdl->push_read ($frame->{type} => type_args ($frame), sub {
         my (undef, $value, $eol) = @_;
         my %seen = (index => $i, value => tag ($value, $frame->{type} eq "json"));
         $seen{eol} = unpack "H*", $eol if $frame->{type} eq "line";
         print $report->encode (\%seen), "\n";
         if ($frame->{type} eq "line") {
            $_[0]->push_write ($value . $eol);
         } else {
            send_frame ($_[0], $frame, $value);
         }
      });
   }
};

$done->recv;
