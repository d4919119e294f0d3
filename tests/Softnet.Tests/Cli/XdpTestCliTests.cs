using System.CommandLine;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Cli;
using Softnet.Tests.Xdp.Bpf.Elf;
using Xunit;

namespace Softnet.Tests.Cli;

/// <summary>`softnet xdp test PROG.o CAPTURE`: a clang-built program over a small capture, end to end.</summary>
public class XdpTestCliTests
{
    private static (int Exit, string Out, string Err) Softnet(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = new RootCommand { XdpCommand.Create() }.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private static string WriteCapture(string path, IEnumerable<(long Ts, byte[] Frame)> frames)
    {
        using var w = CaptureWriter.Create(path);
        foreach (var (ts, f) in frames) w.Write(ts, f);
        return path;
    }

    [Theory]
    [InlineData("jit", "in.pcapng", "out.pcap")]
    [InlineData("interp", "in.pcap", "out.pcapng")]
    public void Drop_port_counts_frames_and_maps_come_out_as_files(string engine, string input, string output)
    {
        var dir = Directory.CreateTempSubdirectory("softnet-xdptest-cli-");
        try
        {
            string obj = Path.Combine(dir.FullName, "drop_port.o");
            File.Copy(BpfTestPrograms.Object("drop_port"), obj);
            var frames = Enumerable.Range(0, 10)
                .Select(i => (Ts: 1_700_000_000_000_000_000L + i * 1_000_123L, Frame: BpfTestPrograms.Udp4(i < 4 ? (ushort)9 : (ushort)53, 20 + i)))
                .ToList();
            string cap = WriteCapture(Path.Combine(dir.FullName, input), frames);
            string outCap = Path.Combine(dir.FullName, output), maps = Path.Combine(dir.FullName, "maps"), json = Path.Combine(dir.FullName, "s.json");

            var (exit, stdout, stderr) = Softnet("xdp", "test", obj + ":xdp", cap, "--out", outCap, "--maps", maps, "--json", json,
                "--engine", engine, "--ifindex", "3", "--rx-queue", "1");
            Assert.True(exit == 0, stderr);
            Assert.Matches(@"drop\s+4\n", stdout.Replace("\r", ""));
            Assert.Matches(@"pass\s+6\n", stdout.Replace("\r", ""));
            Assert.Matches(@"total\s+10\n", stdout.Replace("\r", ""));

            var s = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            Assert.Equal(10, s.GetProperty("frames").GetInt64());
            Assert.Equal(4, s.GetProperty("verdicts").GetProperty("drop").GetInt64());
            Assert.Equal(6, s.GetProperty("verdicts").GetProperty("pass").GetInt64());
            Assert.Equal(0, s.GetProperty("verdicts").GetProperty("aborted").GetInt64());
            Assert.Equal(6, s.GetProperty("frames_written").GetInt64());
            Assert.Equal(engine, s.GetProperty("engine").GetString());
            Assert.Equal("xdp", s.GetProperty("section").GetString());
            Assert.Equal(3, s.GetProperty("ingress_ifindex").GetInt32());
            Assert.Equal(1, s.GetProperty("rx_queue_index").GetInt32());
            Assert.Equal(0, s.GetProperty("faults").GetArrayLength());
            Assert.Equal(4, s.GetProperty("maps").GetProperty("verdicts").GetProperty("entries").GetInt64());

            // The passed frames, unchanged (drop_port does not write), with the input timestamps.
            using (var r = CaptureReader.Open(outCap))
            {
                var back = MemoryCaptureReader.Load(r);
                Assert.Equal(frames.Skip(4).Select(f => f.Ts), back.Select(b => b.TimestampNs));
                Assert.Equal(frames.Skip(4).Select(f => Convert.ToHexString(f.Frame)), back.Select(b => Convert.ToHexString(b.Frame)));
            }

            // verdicts.json in bpftool's form: key 1 (XDP_DROP) counted 4, key 2 (XDP_PASS) 6.
            string text = File.ReadAllText(Path.Combine(maps, "verdicts.json"));
            Assert.EndsWith("]\n", text);
            Assert.DoesNotContain(" ", text);
            var dump = JsonDocument.Parse(text).RootElement;
            Assert.Equal(4, dump.GetArrayLength());
            Assert.Equal("0x04", dump[1].GetProperty("value")[0].GetString());
            Assert.Equal("0x06", dump[2].GetProperty("value")[0].GetString());
            Assert.Equal("0x02", dump[2].GetProperty("key")[0].GetString());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Bad_object_section_or_capture_exit_2_with_a_clear_message()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-xdptest-cli-");
        try
        {
            string cap = WriteCapture(Path.Combine(dir.FullName, "in.pcap"), [(0, BpfTestPrograms.Udp4(9))]);
            string good = BpfTestPrograms.Object("drop_port");

            var (exit, stdout, stderr) = Softnet("xdp", "test", Path.Combine(dir.FullName, "missing.o"), cap);
            Assert.Equal(2, exit);
            Assert.Contains("missing.o", stderr);

            (exit, _, stderr) = Softnet("xdp", "test", good + ":xdp/nothing", cap);
            Assert.Equal(2, exit);
            Assert.Contains("xdp/nothing", stderr);

            // A relocation to an undefined extern: the loader names the section and instruction.
            (exit, _, stderr) = Softnet("xdp", "test", BpfTestPrograms.Object("bad_extern"), cap);
            Assert.Equal(2, exit);
            Assert.Matches(@"bad_extern.*\.o: .*xdp:\d+", stderr);
            Assert.DoesNotContain("   at ", stderr);

            string notCapture = Path.Combine(dir.FullName, "x.pcap");
            File.WriteAllText(notCapture, "hello, world");
            (exit, _, stderr) = Softnet("xdp", "test", good, notCapture);
            Assert.Equal(2, exit);
            Assert.Contains("x.pcap", stderr);
            Assert.DoesNotContain("   at ", stderr);

            (exit, _, stderr) = Softnet("xdp", "test", good, Path.Combine(dir.FullName, "none.pcap"));
            Assert.Equal(2, exit);
            Assert.Contains("none.pcap", stderr);

            (exit, _, stderr) = Softnet("xdp", "test", good, cap, "--cpu", "4096");
            Assert.Equal(2, exit);
            Assert.Contains("--cpu 4096", stderr);
            _ = stdout;
        }
        finally { dir.Delete(true); }
    }
}
