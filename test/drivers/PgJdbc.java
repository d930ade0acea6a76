// PgJdbc.java -- pgJDBC PreparedStatements (prepareThreshold=1: server-side
// named statements from the first execution) through pgslab, for
// test/t/074_prep_drivers.pl: 20 threads, 50 transactions each, three
// statements prepared once per connection and reused.
// Prints "ok=<n> errors=<n> digest=<md5>".
//
// usage: java -cp /usr/share/java/postgresql.jar PgJdbc.java host port user password tag

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

public class PgJdbc {
	static final int CLIENTS = 20, TXNS = 50;
	static final long DEADLINE = System.currentTimeMillis() + 60000;

	static String work(String url, Properties props, String tag, int k) throws Exception {
		StringBuilder acc = new StringBuilder();
		try (Connection c = DriverManager.getConnection(url, props)) {
			c.setAutoCommit(false);
			PreparedStatement p1 = c.prepareStatement("SELECT ?::int + ?::int AS v, md5(?::text) AS t");
			PreparedStatement p2 = c.prepareStatement("INSERT INTO drv_items (tag, client, i) VALUES (?, ?, ?)");
			PreparedStatement p3 = c.prepareStatement(
					"SELECT count(*)::int AS n FROM drv_items WHERE tag = ? AND client = ?");
			for (int i = 0; i < TXNS; i++) {
				if (System.currentTimeMillis() > DEADLINE)
					throw new Exception("deadline passed at transaction " + i);
				p1.setInt(1, i);
				p1.setInt(2, k);
				p1.setString(3, k + ":" + i);
				int v;
				String t;
				try (ResultSet r = p1.executeQuery()) {
					r.next();
					v = r.getInt(1);
					t = r.getString(2);
				}
				p2.setString(1, tag);
				p2.setInt(2, k);
				p2.setInt(3, i);
				if (p2.executeUpdate() != 1)
					throw new Exception("insert did not insert one row");
				p3.setString(1, tag);
				p3.setInt(2, k);
				int n;
				try (ResultSet r = p3.executeQuery()) {
					r.next();
					n = r.getInt(1);
				}
				c.commit();
				acc.append(v).append(',').append(t).append(',').append(n).append(';');
			}
		}
		return acc.toString();
	}

	public static void main(String[] a) throws Exception {
		String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/postgres";
		Properties props = new Properties();
		props.setProperty("user", a[2]);
		props.setProperty("password", a[3]);
		props.setProperty("prepareThreshold", "1");
		props.setProperty("sslmode", "disable");
		ExecutorService ex = Executors.newFixedThreadPool(CLIENTS);
		List<Future<String>> fs = new ArrayList<>();
		for (int k = 0; k < CLIENTS; k++) {
			final int kk = k;
			fs.add(ex.submit(() -> work(url, props, a[4], kk)));
		}
		StringBuilder all = new StringBuilder();
		List<String> errs = new ArrayList<>();
		for (Future<String> f : fs) {
			try {
				all.append(f.get(90, TimeUnit.SECONDS));
			} catch (Exception e) {
				errs.add(String.valueOf(e.getCause() != null ? e.getCause() : e));
			}
		}
		ex.shutdownNow();
		byte[] d = MessageDigest.getInstance("MD5").digest(all.toString().getBytes(StandardCharsets.UTF_8));
		System.out.println("ok=" + (CLIENTS - errs.size()) + " errors=" + errs.size() + " digest="
				+ String.format("%032x", new BigInteger(1, d))
				+ (errs.isEmpty() ? "" : " " + String.join(" | ", errs.subList(0, Math.min(3, errs.size())))));
		System.exit(errs.isEmpty() ? 0 : 1);
	}
}
