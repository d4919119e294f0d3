using System.CommandLine;
using Softnet.Capture;
using Softnet.Cli;
using Xunit;

namespace Softnet.Tests.Cli;

[Collection("console")]
public class FilterCliTests
{
    private static (int Rc, string Out, string Err) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var config = new InvocationConfiguration { Output = output, Error = error };
        int rc = new RootCommand { FilterCommand.Create() }.Parse(args).Invoke(config);
        return (rc, output.ToString(), error.ToString());
    }

    [Fact]
    public void Prints_the_program_in_the_three_dump_formats()
    {
        Assert.Equal("(000) ldb      [0]\n(001) and      #0xf0\n(002) jeq      #0x60            jt 3\tjf 4\n(003) ret      #262144\n(004) ret      #0\n",
            Invoke("filter", "ip6", "--link", "raw").Out);
        Assert.Equal("4\n40 0 0 14\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n", Invoke("filter", "ip", "--link", "sll", "-ddd").Out);
        Assert.Equal("{ 0x28, 0, 0, 0x00000000 },\n{ 0x15, 0, 1, 0x00000800 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n",
            Invoke("filter", "ip", "--link", "sll2", "-dd").Out);
    }

    [Fact]
    public void A_bad_expression_is_exit_2_with_libpcaps_message_and_where()
    {
        var (rc, _, err) = Invoke("filter", "tcp port 99999");
        Assert.Equal(2, rc);
        Assert.Contains("illegal port number 99999 > 65535", err, StringComparison.Ordinal);
        Assert.Contains("at character", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Counts_and_writes_the_matching_frames_of_a_capture()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-filter-");
        try
        {
            string cap = Path.Combine(dir.FullName, "in.pcap"), outCap = Path.Combine(dir.FullName, "out.pcap");
            using (var w = CaptureWriter.Create(cap, LinkType.Ethernet))
            {
                for (int i = 0; i < 10; i++)
                {
                    var f = new byte[60];
                    f[12] = i % 2 == 0 ? (byte)0x08 : (byte)0x86;
                    f[13] = i % 2 == 0 ? (byte)0x00 : (byte)0xdd;
                    w.Write(1_000_000_000L * i, f);
                }
            }
            var (rc, output, _) = Invoke("filter", "ip", cap, "--write", outCap);
            Assert.Equal(0, rc);
            Assert.Equal("5", output.Trim());
            using var r = CaptureReader.Open(outCap);
            int n = 0;
            while (r.TryRead(out _, out var data)) { Assert.Equal(0x08, data[12]); n++; }
            Assert.Equal(5, n);
            Assert.Equal("0", Invoke("filter", "arp", cap).Out.Trim());
            Assert.Equal(2, Invoke("filter", "ip", Path.Combine(dir.FullName, "missing.pcap")).Rc);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
